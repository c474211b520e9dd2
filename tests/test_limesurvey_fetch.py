"""deploy, fetch, faults and parsing, through the real citric client and the stand-in RC2 server."""

from __future__ import annotations

import base64
import json
import logging
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from survey.errors import ConfigError, LimeSurveyFetchError
from survey.questionnaire import OUTCOMES, QUESTIONNAIRE
from tests.limesurvey_server import LimeSurveyModel, StandInServer

PASSWORD = "s3cret-Pa55word-never-shown"
T0 = datetime(2025, 3, 20, 12, 0, 0, tzinfo=UTC)
KEYS = [f"{i:032x}" for i in range(1, 7)]


@pytest.fixture
def server() -> Any:
    model = LimeSurveyModel({"popeval": PASSWORD})
    with StandInServer(model) as srv:
        yield srv


def _creds(srv: StandInServer) -> dict[str, str]:
    return {"url": srv.url, "user": "popeval", "password": PASSWORD}


def _invitations(tmp_path: Path, keys: list[str]) -> Path:
    p = tmp_path / "invitations.csv"
    p.write_text("attribute_1,email,language\n" + "".join(f"{k},person{i}@example.invalid,nl\n" for i, k in enumerate(keys)), encoding="utf-8")
    return p


def _deploy(srv: StandInServer, tmp_path: Path, keys: list[str]) -> Any:
    from survey.deploy import deploy, read_invitations
    from survey.lss import build_lss

    return deploy(build_lss(), read_invitations(_invitations(tmp_path, keys)), **_creds(srv), retries=0)


def _answers(srv: StandInServer, sid: int, token: str | None, complete: bool, effect: tuple[str, str, str, str], when: str) -> int:
    m = srv.model
    key = m.get_session_key("popeval", PASSWORD)
    fm = {v["title"] + (f"[{v['aid']}]" if v["aid"] else ""): k for k, v in m.get_fieldmap(key, sid).items() if v["title"]}
    data: dict[str, Any] = {"startdate": when, "datestamp": when, "submitdate": when if complete else "", "lastpage": 4 if complete else 2}
    if token:
        data["token"] = token
    for o, v in zip(OUTCOMES, effect, strict=True):
        data[fm[o.column]] = v
    data[fm["TRAINDOMAIN"]] = "A3"
    data[fm["GUIDANCE"]] = "Y"
    data[fm["REMARKS"]] = "Prima; \"goed\"\r\nčaf\u00e9 👍"
    rid = int(m.add_response(key, sid, data))
    m.release_session_key(key)
    return rid


def _fetch(srv: StandInServer, out: Path, sid: int, when: datetime, **kw: Any) -> Any:
    from survey.fetch import fetch

    kw.setdefault("retries", 1)
    kw.setdefault("backoff", 0.01)
    return fetch(sid, out, **_creds(srv), progress=False, now=when, **kw)


def _setup_study(srv: StandInServer, tmp_path: Path) -> tuple[int, dict[str, str]]:
    res = _deploy(srv, tmp_path, KEYS)
    sid = res.survey_id
    key = srv.model.get_session_key("popeval", PASSWORD)
    parts = srv.model.list_participants(key, sid, 0, 100, False, ["attribute_1"])
    tok = {p["attribute_1"]: p["token"] for p in parts}
    srv.model.release_session_key(key)
    return sid, tok


# ----------------------------------------------------------------------------- lss and codebook


def test_lss_imports_and_the_server_structure_agrees_with_the_questionnaire(server: StandInServer) -> None:
    from survey.lsformat import code_heading_map
    from survey.lss import build_lss, fieldmap_from_lss

    lss = build_lss()
    root = ET.fromstring(lss)
    titles = [r.findtext("title") for r in root.findall("questions/rows/row")]
    assert titles == [q.code for q in QUESTIONNAIRE.questions]
    assert root.findtext("surveys/rows/row/anonymized") == "N"
    assert root.findtext("surveys/rows/row/datestamp") == "Y"
    assert json.loads(root.findtext("surveys/rows/row/attributedescriptions") or "")["attribute_1"]["description"] == "pseudo_id"
    assert sorted(r.findtext("surveyls_language") for r in root.findall("surveys_languagesettings/rows/row")) == ["en", "nl"]

    m = server.model
    key = m.get_session_key("popeval", PASSWORD)
    sid = m.import_survey(key, base64.b64encode(lss).decode(), "lss")
    fieldmap = m.get_fieldmap(key, sid)
    assert list(code_heading_map(fieldmap).values())[8:] == QUESTIONNAIRE.answer_columns()
    # the server renumbered groups and questions; the .lss-derived map agrees once told how
    renum = {}
    doc_q = {r.findtext("title"): int(r.findtext("qid") or 0) for r in root.findall("questions/rows/row")}
    for v in fieldmap.values():
        if v["title"]:
            renum[doc_q[v["title"]]] = (v["gid"], v["qid"])
    assert fieldmap_from_lss(lss, sid, renum) == {k: v for k, v in code_heading_map(fieldmap).items() if "X" in k}
    qs = m.list_questions(key, sid)
    top = [q for q in qs if q["parent_qid"] == 0]
    assert {q["title"]: q["type"] for q in top} == {q.code: q.qtype for q in QUESTIONNAIRE.questions}
    effect = next(q for q in top if q["title"] == "EFFECT")
    props = m.get_question_properties(key, effect["qid"], ["answeroptions"], "en")
    assert {k: v["answer"] for k, v in props["answeroptions"].items()} == {a.code: a.en for a in QUESTIONNAIRE.question("EFFECT").answers}


def test_codebook_lists_every_export_column_with_labels_and_missing_codes() -> None:
    from survey.codebook import codebook

    cb = codebook()
    assert [e.column for e in cb.entries] == QUESTIONNAIRE.answer_columns()
    sat = cb.entry("satisfaction")
    assert sat.column == "EFFECT[SQ004]" and sat.missing_codes == ("99",) and sat.direction == "ascending"
    frame = cb.to_frame()
    assert set(frame.loc[frame["variable"] == "stronger", "code"]) == {"1", "2", "3", "4", "5", "99"}
    assert frame.loc[(frame["variable"] == "stronger") & (frame["code"] == "99"), "code_en"].item() == "Don't know"
    assert json.loads(cb.to_json())[0]["variable"] == "inc_oc"
    md = cb.to_markdown("en")
    assert "| satisfaction | `EFFECT[SQ004]`" in md and "99 = Don't know" in md
    assert "variables" in cb.summary()
    with pytest.raises(ConfigError):
        cb.to_markdown("fr")


# ----------------------------------------------------------------------------- deploy


def test_deploy_is_idempotent(server: StandInServer, tmp_path: Path) -> None:
    first = _deploy(server, tmp_path, KEYS[:4])
    assert first.imported and first.activated and first.participants_added == 4
    again = _deploy(server, tmp_path, KEYS)  # two more invitations since
    assert again.survey_id == first.survey_id
    assert not again.imported and not again.activated
    assert again.participants_before == 4 and again.participants_added == 2
    third = _deploy(server, tmp_path, KEYS)
    assert third.participants_added == 0
    survey = server.model.surveys[first.survey_id]
    assert survey.active and sorted(p["attribute_1"] for p in survey.tokens or []) == sorted(KEYS)
    assert len(server.model.surveys) == 1
    assert not server.model.sessions  # every session key was released


# ----------------------------------------------------------------------------- fetch


def test_fetch_incremental_snapshots_and_parse(server: StandInServer, tmp_path: Path) -> None:
    from survey.parse import parse_snapshot, read_participants

    sid, tok = _setup_study(server, tmp_path)
    out = tmp_path / "data_raw" / "survey"
    _answers(server, sid, tok[KEYS[0]], True, ("4", "5", "99", "3"), "2025-03-03 09:00:00")
    _answers(server, sid, tok[KEYS[1]], False, ("2", "2", "2", "2"), "2025-03-04 09:00:00")
    first = _fetch(server, out, sid, T0)
    assert (first.new_responses, first.responses, first.complete, first.participants) == (2, 2, 1, 6)
    assert first.previous is None
    # a duplicate submission by the first person, a completion by the second, an unknown token
    _answers(server, sid, tok[KEYS[0]], True, ("5", "5", "4", "3"), "2025-03-05 09:00:00")
    _answers(server, sid, tok[KEYS[1]], True, ("3", "3", "3", "3"), "2025-03-06 09:00:00")
    _answers(server, sid, "NotAParticipant1", True, ("1", "1", "1", "1"), "2025-03-07 09:00:00")
    second = _fetch(server, out, sid, T0 + timedelta(hours=1))
    assert second.new_responses == 3 and second.responses == 5 and second.previous == first.snapshot
    man = json.loads((second.snapshot / "manifest.json").read_text())
    # response 2 was incomplete in the first snapshot, so the export starts there
    assert man["requested_from_id"] == 2 and man["from_id"] == 1 and man["to_id"] == 5 and man["previous"] == first.snapshot.name
    assert man["server_version"] == "6.14.0"
    import hashlib

    for name, digest in man["files"].items():
        assert hashlib.sha256((second.snapshot / name).read_bytes()).hexdigest() == digest
    # the merged export is byte-identical to a full export by the server
    key = server.model.get_session_key("popeval", PASSWORD)
    full = server.model.export_responses(key, sid, "csv", None, "all", "code", "short").payload
    assert (second.snapshot / "responses.csv").read_bytes() == full
    assert (first.snapshot / "responses.csv").read_bytes() != full  # earlier snapshot untouched

    parts = read_participants(second.snapshot)
    assert list(parts.columns) == ["tid", "token", "attribute_1"] and len(parts) == 6
    data = parse_snapshot(second.snapshot)
    c = data.counts
    assert (c["raw_rows"], c["duplicates_dropped"], c["duplicate_tokens"], c["no_participant"], c["respondents"]) == (5, 2, 2, 1, 3)
    f = data.frame.set_index("person_key", drop=False)
    # rule: the latest complete submission per token is kept
    assert f.loc[KEYS[0], "response_id"] == 3 and f.loc[KEYS[0], "stronger"] == 5
    assert f.loc[KEYS[1], "response_id"] == 4 and bool(f.loc[KEYS[1], "complete"])
    assert c["dont_know_promotion"] == 0  # the 99 was in the dropped first submission
    assert data.frame["person_key"].isna().sum() == 1
    assert data.frame["stronger"].cat.ordered and list(data.frame["stronger"].cat.categories) == [1, 2, 3, 4, 5]
    assert "duplicates dropped" in data.summary() and set(data.to_frame()["count"]) >= {"raw_rows", "no_participant"}


def test_sgqa_headings_resolve_through_the_stored_fieldmap(server: StandInServer, tmp_path: Path) -> None:
    from survey.lsformat import write_csv_export
    from survey.parse import parse_snapshot

    sid, tok = _setup_study(server, tmp_path)
    _answers(server, sid, tok[KEYS[2]], True, ("99", "4", "4", "1"), "2025-03-03 09:00:00")
    snap = _fetch(server, tmp_path / "s", sid, T0).snapshot
    fm = json.loads((snap / "fieldmap.json").read_text())
    survey = server.model.surveys[sid]
    row = survey.responses[0]
    cols = list(fm)
    (tmp_path / "sgqa").mkdir()
    (tmp_path / "sgqa" / "responses.csv").write_bytes(write_csv_export(cols, [row]))
    (tmp_path / "sgqa" / "fieldmap.json").write_text(json.dumps(fm))
    a = parse_snapshot(tmp_path / "sgqa").frame
    b = parse_snapshot(snap / "responses.csv").frame
    assert a.drop(columns=["person_key"]).equals(b.drop(columns=["person_key"]))
    assert bool(a.loc[0, "stronger_dont_know"]) and a.loc[0, "satisfaction"] == 1


def test_credentials_only_from_env_and_never_shown(server: StandInServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from analysis.cli import main

    sid, _ = _setup_study(server, tmp_path)
    for name in ("LIMESURVEY_URL", "LIMESURVEY_USER", "LIMESURVEY_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    from survey.fetch import credentials_from_env

    with pytest.raises(ConfigError, match="LIMESURVEY_PASSWORD"):
        credentials_from_env()
    monkeypatch.setenv("LIMESURVEY_URL", server.url)
    monkeypatch.setenv("LIMESURVEY_USER", "popeval")
    monkeypatch.setenv("LIMESURVEY_PASSWORD", PASSWORD + "-wrong")
    caplog.set_level(logging.DEBUG)
    rc = main(["fetch", "--survey-id", str(sid), "--out", str(tmp_path / "o"), "--no-progress", "--retries", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "rejected the credentials" in err
    assert PASSWORD not in err and PASSWORD not in caplog.text
    assert not (tmp_path / "o" / str(sid)).exists() or not any((tmp_path / "o" / str(sid)).iterdir())
    monkeypatch.setenv("LIMESURVEY_PASSWORD", PASSWORD)
    assert main(["fetch", "--survey-id", str(sid), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert PASSWORD not in capsys.readouterr().out + caplog.text


# ----------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "expect"),
    [("drop", "connection was lost"), ("stall", "did not answer in time"), ("bad_base64", "not valid base64"), ("truncated", "not valid JSON")],
)
def test_faults_leave_earlier_snapshots_and_a_retry_loses_nothing(server: StandInServer, tmp_path: Path, kind: str, expect: str) -> None:
    sid, tok = _setup_study(server, tmp_path)
    out = tmp_path / "snap"
    for i in range(3):
        _answers(server, sid, tok[KEYS[i]], True, ("4", "4", "4", "4"), f"2025-03-0{i + 1}10:00:00")
    first = _fetch(server, out, sid, T0)
    before = {p: p.read_bytes() for p in first.snapshot.iterdir()}
    for i in range(3, 6):
        _answers(server, sid, tok[KEYS[i]], True, ("3", "3", "3", "3"), f"2025-03-1{i} 10:00:00")
    server.inject("export_responses", kind, times=2, seconds=1.5)
    with pytest.raises(LimeSurveyFetchError, match=expect):
        _fetch(server, out, sid, T0 + timedelta(hours=1), timeout=0.5)
    assert sorted(p.name for p in (out / str(sid)).iterdir()) == [first.snapshot.name]  # nothing partial left
    assert {p: p.read_bytes() for p in first.snapshot.iterdir()} == before
    assert not server.model.sessions  # the key was released despite the failure
    # the next attempt succeeds after one more fault (retried with backoff) and loses nothing
    server.faults.clear()
    server.inject("export_responses", kind, times=1, seconds=1.5)
    second = _fetch(server, out, sid, T0 + timedelta(hours=2), timeout=0.5)
    from survey.parse import read_responses

    ids = read_responses(second.snapshot / "responses.csv")["id"].astype(int).tolist()
    assert ids == [1, 2, 3, 4, 5, 6]


def test_survey_not_active_and_unknown_survey(server: StandInServer, tmp_path: Path) -> None:
    from survey.lss import build_lss

    m = server.model
    key = m.get_session_key("popeval", PASSWORD)
    sid = m.import_survey(key, base64.b64encode(build_lss()).decode(), "lss")
    with pytest.raises(LimeSurveyFetchError, match="not active"):
        _fetch(server, tmp_path, sid, T0)
    with pytest.raises(LimeSurveyFetchError, match="Invalid survey ID"):
        _fetch(server, tmp_path, 999999, T0)
    assert not any(p.is_dir() and any(p.iterdir()) for p in tmp_path.iterdir())
    assert m.sessions == {key}


def test_empty_active_survey_gives_an_empty_snapshot(server: StandInServer, tmp_path: Path) -> None:
    from survey.parse import parse_snapshot

    sid, _ = _setup_study(server, tmp_path)
    res = _fetch(server, tmp_path / "o", sid, T0)
    assert (res.responses, res.participants) == (0, 6)
    assert (res.snapshot / "responses.csv").read_bytes() == b"\r\n"
    assert parse_snapshot(res.snapshot).counts["respondents"] == 0


# ----------------------------------------------------------------------------- --from-file


GOLDEN = Path(os.environ.get("LIMESURVEY_GOLDEN", Path(__file__).resolve().parents[2] / "shared" / "limesurvey"))


def test_from_file_csv_and_both_json_shapes_give_the_same_snapshot(tmp_path: Path) -> None:
    from survey.fetch import ingest_file
    from survey.lsformat import parse_responses_bytes, write_csv_export, write_json_export
    from survey.parse import parse_snapshot

    cols = ["id", "submitdate", "lastpage", "startlanguage", "seed", "token", "startdate", "datestamp", *QUESTIONNAIRE.answer_columns()]
    rows: list[dict[str, object]] = [
        {**dict.fromkeys(cols), "id": 1, "submitdate": "2025-03-03 09:18:40", "lastpage": 4, "startlanguage": "nl", "token": "tokA",
         "EFFECT[SQ001]": "4", "EFFECT[SQ004]": "99", "REMARKS": 'a;b "c"\r\nd – é 👍', "INCENTIVE[SQ002]": ""},
        {**dict.fromkeys(cols), "id": 2, "submitdate": None, "lastpage": 1, "startlanguage": "en", "token": None, "EFFECT[SQ001]": "2"},
    ]
    csv_bytes = write_csv_export(cols, rows)
    assert csv_bytes.startswith(b"\xef\xbb\xbf") and b"\r\n" in csv_bytes
    new_json = write_json_export(cols, rows)
    flat = json.loads(new_json)["responses"]
    old_json = json.dumps({"responses": [{str(r["id"]): r} for r in flat]}).encode()
    snaps = []
    for i, (name, data) in enumerate((("export.csv", csv_bytes), ("export.json", new_json), ("old.json", old_json))):
        f = tmp_path / name
        f.write_bytes(data)
        res = ingest_file(f, 461283, tmp_path / f"out{i}", now=T0)
        assert (res.responses, res.complete) == (2, 1)
        snaps.append(res.snapshot)
    # every shape ends as the same LimeSurvey CSV (line breaks in values normalised as LimeSurvey's CSV does)
    assert (snaps[0] / "responses.csv").read_bytes() == csv_bytes
    assert (snaps[1] / "responses.csv").read_bytes() == csv_bytes == (snaps[2] / "responses.csv").read_bytes()
    header, body = parse_responses_bytes(csv_bytes)
    assert body[0][header.index("INCENTIVE[SQ002]")] == "" and body[1][header.index("INCENTIVE[SQ002]")] is None
    frame = parse_snapshot(snaps[2]).frame
    assert frame["satisfaction_dont_know"].tolist() == [True, False]
    assert frame["remarks"].iloc[0] == 'a;b "c"\nd – é 👍'


@pytest.mark.skipif(not (GOLDEN / "responses_code_short.csv").is_file(), reason="golden exports not available")
def test_recorded_exports_parse_identically() -> None:
    from survey.parse import parse_snapshot

    a = parse_snapshot(GOLDEN / "responses_code_short.csv")
    b = parse_snapshot(GOLDEN / "responses.json")
    assert a.counts["raw_rows"] == 8 and a.counts["complete"] == 5 and a.counts["incomplete"] == 3
    assert a.counts["dont_know_stronger"] == 1 and a.counts["dont_know_satisfaction"] == 2
    assert a.frame["response_id"].tolist() == list(range(1, 9))
    # JSON keeps a CRLF inside a value where CSV has LF; everything else is equal
    assert a.frame.drop(columns="remarks").equals(b.frame.drop(columns="remarks"))
    assert b.frame["remarks"].iloc[7] == "Goed georganiseerd.\r\nWel wat duur."
    assert a.frame["train_domain_other"].iloc[2] == "Zorgkundige – één opleiding"
    assert "GUIDANCE" in a.missing_columns


# ----------------------------------------------------------------------------- demo


def test_demo_snapshot_goes_through_the_same_parser() -> None:
    from shared_studies import generated_study

    from survey.lsformat import parse_responses_bytes
    from survey.parse import parse_snapshot, read_participants

    snap = next((generated_study(20_000, 5) / "survey").glob("*/*/"))
    data = parse_snapshot(snap)
    header, body = parse_responses_bytes((snap / "responses.csv").read_bytes())
    tok_i, sub_i = header.index("token"), header.index("submitdate")
    tokens = [r[tok_i] for r in body]
    parts = read_participants(snap)
    known = set(parts["token"])
    c = data.counts
    man = json.loads((snap / "manifest.json").read_text())
    assert c["raw_rows"] == len(body) == man["counts"]["responses"]
    assert c["duplicates_dropped"] == len(tokens) - len(set(tokens)) > 0
    assert c["respondents"] == len(set(tokens))
    assert c["no_participant"] == len({t for t in tokens if t not in known}) > 0
    kept = data.frame
    complete_tokens = {r[tok_i] for r in body if r[sub_i]}
    assert c["complete"] == len(complete_tokens) and c["incomplete"] == len(set(tokens) - complete_tokens) > 0
    for o in OUTCOMES:
        assert c[f"dont_know_{o.name}"] == int(kept[f"{o.name}_dont_know"].sum())
    assert kept["person_key"].notna().sum() == c["linked"] == c["respondents"] - c["no_participant"]


def test_deploy_and_fetch_commands(server: StandInServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    monkeypatch.setenv("LIMESURVEY_URL", server.url)
    monkeypatch.setenv("LIMESURVEY_USER", "popeval")
    monkeypatch.setenv("LIMESURVEY_PASSWORD", PASSWORD)
    inv = _invitations(tmp_path, KEYS)
    assert main(["deploy", "--participants", str(inv)]) == 0
    assert main(["deploy", "--participants", str(inv)]) == 0
    out = capsys.readouterr().out
    assert "added 6" in out and "added 0" in out
    (sid,) = server.model.surveys
    assert main(["fetch", "--survey-id", str(sid), "--out", str(tmp_path / "raw"), "--no-progress"]) == 0
    assert "participants              6" in capsys.readouterr().out
    assert PASSWORD not in out


def test_deploy_pseudonymises_raw_insz_with_the_study_key(server: StandInServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """An invitation list with raw INSZ: hashed with the extracts' key before anything reaches LimeSurvey, never shown."""
    import numpy as np
    import pandas as pd

    from analysis.cli import main
    from survey.insz import pseudonymise, synthetic_insz

    key = "a-study-key-of-sufficient-length"
    for name, value in (("LIMESURVEY_URL", server.url), ("LIMESURVEY_USER", "popeval"), ("LIMESURVEY_PASSWORD", PASSWORD), ("POPEVAL_PSEUDO_KEY", key)):
        monkeypatch.setenv(name, value)
    insz = synthetic_insz(np.random.default_rng(3), 4)
    written = [insz[0][:2] + "." + insz[0][2:4] + "." + insz[0][4:6] + "-" + insz[0][6:9] + "." + insz[0][9:], *insz[1:]]  # one as printed on a card
    inv = tmp_path / "uitnodigingen.csv"
    inv.write_text("attribute_1,email,language\n" + "".join(f"{k},person{i}@example.invalid,nl\n" for i, k in enumerate(written)), encoding="utf-8")
    study = tmp_path / "study.toml"
    study.write_text("[survey]\nsurvey_id = 0\n\n[admin]\npseudonymise = true\n", encoding="utf-8")

    # without pseudonymisation: refused before the server is contacted, no value shown
    assert main(["deploy", "--participants", str(inv)]) != 0
    refused = capsys.readouterr()
    assert "Raw INSZ numbers in the invitations" in refused.err + refused.out and "attribute_1" in refused.err + refused.out
    assert not server.model.surveys and not server.model.calls
    assert not any(v in refused.err + refused.out for v in insz + written)

    # with the study's pseudonymise = true: the keys are the extracts' keyed hashes
    assert main(["deploy", "--participants", str(inv), "--study", str(study)]) == 0
    out = capsys.readouterr()
    (sid,) = server.model.surveys
    stored = [str(p["attribute_1"]) for p in server.model.surveys[sid].tokens]
    expected = pseudonymise(pd.Series(insz), key.encode()).tolist()
    assert sorted(stored) == sorted(expected) and len(set(expected)) == 4
    state = json.dumps(server.model.surveys[sid].tokens, default=str) + out.out + out.err
    assert not any(v in state for v in insz + written)
    # a second deploy of the same list adds nobody: the same keys
    assert main(["deploy", "--participants", str(inv), "--pseudonymise"]) == 0
    assert "added 0" in capsys.readouterr().out
