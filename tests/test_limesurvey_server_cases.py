"""popeval against the behaviour of a real LimeSurvey 6.14 server (transcripts 08-12), through citric and the stand-in.

Idempotent deploys, participant paging by tid, late completions picked up by incremental fetches,
the login lockout, wrong endpoint paths, survey ids LimeSurvey chose itself, changed questionnaires,
and the 2,500-participant deploy -> respond -> fetch -> late completion -> fetch cycle.
"""

from __future__ import annotations

import hashlib
import json
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from survey.errors import DataValidationError, LimeSurveyFetchError
from tests.limesurvey_server import LimeSurveyModel, StandInServer

PASSWORD = "Heldout-Pa55-not-in-any-output"
T0 = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)


def _keys(n: int, salt: str = "k") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest()[:32] for i in range(n)]


def _invitations(path: Path, keys: list[str]) -> Path:
    path.write_text("attribute_1,email,language\n" + "".join(f"{k},p{i}@example.invalid,nl\n" for i, k in enumerate(keys)), encoding="utf-8")
    return path


@pytest.fixture
def server() -> Any:
    with StandInServer(LimeSurveyModel({"popeval": PASSWORD})) as srv:
        yield srv


def _creds(srv: StandInServer) -> dict[str, Any]:
    return {"url": srv.url, "user": "popeval", "password": PASSWORD, "retries": 0}


def _deploy(srv: StandInServer, tmp_path: Path, keys: list[str], **kw: Any) -> Any:
    from survey.deploy import deploy, read_invitations
    from survey.lss import build_lss

    return deploy(kw.pop("lss", None) or build_lss(), read_invitations(_invitations(tmp_path / "inv.csv", keys)), **_creds(srv), **kw)


def _fetch(srv: StandInServer, out: Path, sid: int, when: datetime, **kw: Any) -> Any:
    from survey.fetch import fetch

    return fetch(sid, out, **{**_creds(srv), "retries": 1}, backoff=0.01, progress=False, now=when, **kw)


def _columns(srv: StandInServer, sid: int) -> dict[str, str]:
    """Code heading -> SGQA column of the survey on the server."""
    m = srv.model
    key = m.get_session_key("popeval", PASSWORD)
    fm = m.get_fieldmap(key, sid)
    m.release_session_key(key)
    return {v["title"] + (f"[{v['aid']}]" if v["aid"] else ""): k for k, v in fm.items() if v["title"]}


def _tokens(srv: StandInServer, sid: int) -> list[str]:
    return [p["token"] for p in sorted(srv.model.surveys[sid].tokens or [], key=lambda p: p["tid"])]


def _respond(srv: StandInServer, sid: int, token: str, col: dict[str, str], *, complete: bool, v: str = "4") -> int:
    """A response as the web survey stores it (first page only when incomplete)."""
    m = srv.model
    key = m.get_session_key("popeval", PASSWORD)
    data: dict[str, Any] = {"token": token, "startdate": "2026-11-20 10:00:00", "datestamp": "2026-11-20 10:05:00",
                            "lastpage": 4 if complete else 1, col["EFFECT[SQ001]"]: v, col["EFFECT[SQ002]"]: v}
    if not complete:
        data["submitdate"] = ""  # LimeSurvey stamps a response without submitdate as complete
    else:
        data.update({col["EFFECT[SQ003]"]: v, col["EFFECT[SQ004]"]: "99", col["TRAINDOMAIN"]: "A2"})
    rid = int(m.add_response(key, sid, data))
    m.release_session_key(key)
    return rid


# ----------------------------------------------------------------------------- deploy


def test_a_second_deploy_imports_activates_and_adds_nothing(server: StandInServer, tmp_path: Path) -> None:
    keys = _keys(8)
    first = _deploy(server, tmp_path, keys[:5])
    assert (first.imported, first.tokens_activated, first.activated, first.participants_added) == (True, True, True, 5)
    calls_before = list(server.model.calls)
    again = _deploy(server, tmp_path, keys[:5])
    assert (again.imported, again.tokens_activated, again.activated, again.participants_added) == (False, False, False, 0)
    new_calls = server.model.calls[len(calls_before):]
    assert {"activate_tokens", "activate_survey", "import_survey", "add_participants"}.isdisjoint(new_calls)
    more = _deploy(server, tmp_path, keys)  # three more invitations
    assert (more.participants_before, more.participants_added, more.survey_id) == (5, 3, first.survey_id)
    assert server.model.calls.count("activate_tokens") == 1 and server.model.calls.count("import_survey") == 1
    assert sorted(p["attribute_1"] for p in server.model.surveys[first.survey_id].tokens or []) == sorted(keys)
    assert not server.model.sessions


def test_deploy_reports_the_id_limesurvey_chose_and_writes_it_into_the_study_file(
        server: StandInServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main
    from survey.lss import DEFAULT_SURVEY_ID

    server.model.add_foreign_survey(DEFAULT_SURVEY_ID, "Een andere bevraging")  # the .lss's id is taken
    study = tmp_path / "study.toml"
    study.write_text('[study]\nname = "x"  # keep me\n\n[survey]\nsurvey_id = 461283  # from the earlier deploy\nsnapshot = "latest"\n',
                     encoding="utf-8")
    for k, v in {"LIMESURVEY_URL": server.url, "LIMESURVEY_USER": "popeval", "LIMESURVEY_PASSWORD": PASSWORD}.items():
        monkeypatch.setenv(k, v)
    inv = _invitations(tmp_path / "inv.csv", _keys(3))
    assert main(["deploy", "--participants", str(inv), "--study", str(study)]) == 0
    out = capsys.readouterr().out
    new = [s for s in server.model.surveys if s != DEFAULT_SURVEY_ID]
    assert len(new) == 1 and new[0] != DEFAULT_SURVEY_ID
    assert f"LimeSurvey gave the survey the id {new[0]}: the requested id {DEFAULT_SURVEY_ID} was taken" in out
    assert f"survey_id = {new[0]} written" in out
    text = study.read_text(encoding="utf-8")
    assert f"survey_id = {new[0]}  # from the earlier deploy" in text and "# keep me" in text and 'snapshot = "latest"' in text
    # a rerun with the study file finds the survey by title and changes nothing
    assert main(["deploy", "--participants", str(inv), "--study", str(study)]) == 0
    out = capsys.readouterr().out
    assert "added 0" in out and "(already set)" in out and PASSWORD not in out


def test_a_changed_questionnaire_is_refused_with_what_differs_or_deployed_as_a_new_survey(server: StandInServer, tmp_path: Path) -> None:
    from survey.lss import build_lss

    first = _deploy(server, tmp_path, _keys(3))
    root = ET.fromstring(build_lss())
    for row in root.findall("questions/rows/row"):
        if row.findtext("title") == "HOURS":
            row.find("title").text = "HOURSWEEK"  # type: ignore[union-attr]
        if row.findtext("title") == "REMARKS":
            row.find("type").text = "S"  # type: ignore[union-attr]
    changed = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    with pytest.raises(LimeSurveyFetchError, match="differs from the questionnaire") as exc:
        _deploy(server, tmp_path, _keys(3), lss=changed)
    msg = str(exc.value)
    assert "columns only in the questionnaire: HOURSWEEK" in msg and "columns only on the server: HOURS" in msg
    assert "REMARKS (S in the questionnaire, T on the server)" in msg and "--new-survey" in msg
    assert len(server.model.surveys) == 1 and not server.model.sessions
    res = _deploy(server, tmp_path, _keys(3), lss=changed, new_survey=True)
    assert res.imported and res.survey_id != first.survey_id and res.id_changed and res.participants_added == 3
    assert "HOURSWEEK" in _columns(server, res.survey_id)


# ----------------------------------------------------------------------------- login, endpoint


def test_a_login_lockout_is_named_with_its_length_and_never_extended(server: StandInServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.cli import main

    server.model.lockout_seconds = 2  # the recorded lock is 600 s; the stand-in's length is configurable
    sid = _deploy(server, tmp_path, _keys(2)).survey_id
    monkeypatch.setenv("LIMESURVEY_URL", server.url)
    monkeypatch.setenv("LIMESURVEY_USER", "popeval")
    argv = ["fetch", "--survey-id", str(sid), "--out", str(tmp_path / "o"), "--no-progress", "--retries", "3"]
    logins = server.model.calls.count("get_session_key")
    monkeypatch.setenv("LIMESURVEY_PASSWORD", "wrong")
    for _ in range(3):
        assert main(argv) == 2
        assert "rejected the credentials" in capsys.readouterr().err
    monkeypatch.setenv("LIMESURVEY_PASSWORD", PASSWORD)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "lockout" in err and "10 minutes" in err and "does not retry" in err
    assert "rejected the credentials" not in err and "check LIMESURVEY" not in err and PASSWORD not in err
    assert server.model.calls.count("get_session_key") == logins + 4  # one login per command, none repeated
    time.sleep(3.1)  # whole seconds: time() > last failure + 2
    assert main(argv) == 0
    assert not (tmp_path / "o").exists() or len(list((tmp_path / "o" / str(sid)).iterdir())) == 1


@pytest.mark.parametrize("path", ["/index.php/admin/remotecontrolx", "/index.php/remotecontrol", "/", "/index.php?r=admin/remotecontrol"])
def test_a_wrong_endpoint_path_shows_the_status_and_the_path_never_the_credentials(server: StandInServer, path: str) -> None:
    from survey.fetch import open_client

    base = server.url[: -len(server.PATH)].replace("http://", "http://popeval:" + PASSWORD + "@")
    with pytest.raises(LimeSurveyFetchError) as exc:
        open_client(base + path, "popeval", PASSWORD, retries=0)
    msg = str(exc.value)
    assert "HTTP 400" in msg and path.split("?")[0] in msg and "CSRF" in msg and "/index.php/admin/remotecontrol" in msg
    assert PASSWORD not in msg and "popeval@" not in msg and "Could not reach" not in msg
    open_client(server.url + "/", "popeval", PASSWORD, retries=0).close()  # a trailing slash is the endpoint too


def test_typed_citric_methods_not_raw_positional_calls() -> None:
    import survey.deploy
    import survey.fetch

    for mod in (survey.deploy, survey.fetch):
        src = Path(mod.__file__ or "").read_text(encoding="utf-8")
        assert "session.call(" not in src and "_rpc(" not in src


# ----------------------------------------------------------------------------- paging, life cycle


def test_more_than_a_thousand_participants_are_fetched_each_once(server: StandInServer, tmp_path: Path) -> None:
    from survey.parse import read_participants

    keys = _keys(2350)
    sid = _deploy(server, tmp_path, keys).survey_id
    res = _fetch(server, tmp_path / "o", sid, T0, page_size=1000)
    parts = read_participants(res.snapshot)
    assert res.participants == len(parts) == 2350 and parts["tid"].is_unique and sorted(parts["attribute_1"]) == sorted(keys)
    # pages asked for: tids >= 0, >= 1001, >= 2001, then >= 2351 ("No survey participants found.")
    starts = [json.loads(r["body"])["params"][2] for r in server.requests if b'"list_participants"' in r["body"]][-4:]
    assert starts == [0, 1001, 2001, 2351]


def test_deploy_respond_fetch_late_completion_fetch_with_2500_participants(server: StandInServer, tmp_path: Path) -> None:
    from survey.parse import parse_snapshot
    from survey.snapshot import verify_chain

    keys = _keys(2500)
    dep = _deploy(server, tmp_path, keys)
    assert dep.participants_added == 2500
    sid = dep.survey_id
    col = _columns(server, sid)
    toks = _tokens(server, sid)
    rids = {t: _respond(server, sid, t, col, complete=(i % 3 != 0)) for i, t in enumerate(toks[:240])}
    out = tmp_path / "snapshots"
    first = _fetch(server, out, sid, T0)
    assert (first.responses, first.complete, first.participants) == (240, 160, 2500)
    # 30 of the 80 who stopped midway come back and finish the same response; 15 new people answer
    late = [t for i, t in enumerate(toks[:240]) if i % 3 == 0][:30]
    for t in late:
        server.model.resume_response(sid, rids[t], {col["EFFECT[SQ003]"]: "5", col["EFFECT[SQ004]"]: "5", "lastpage": 4})
    for t in toks[240:255]:
        _respond(server, sid, t, col, complete=True)
    second = _fetch(server, out, sid, T0 + timedelta(days=1))
    man = json.loads((second.snapshot / "manifest.json").read_text())
    assert man["requested_from_id"] == rids[toks[0]] == 1  # the first response that was incomplete
    assert sorted(man["changes"]["completed"]) == sorted(rids[t] for t in late) == sorted(man["changes"]["changed"])
    assert len(man["changes"]["new"]) == 15 and man["changes"]["not_returned"] == []
    assert (second.new_responses, second.changed_responses, second.completed_since) == (15, 30, 30)
    assert (second.responses, second.complete) == (255, 160 + 30 + 15)
    data = parse_snapshot(second.snapshot).frame.set_index("response_id")
    assert data.loc[[rids[t] for t in late], "complete"].all() and (data.loc[[rids[t] for t in late], "satisfaction"] == 5).all()
    # byte-identical to a full export, and each snapshot rebuilds from its predecessor and its export
    key = server.model.get_session_key("popeval", PASSWORD)
    assert (second.snapshot / "responses.csv").read_bytes() == server.model.export_responses(key, sid, "csv").payload
    server.model.release_session_key(key)
    assert verify_chain(second.snapshot) == [first.snapshot, second.snapshot]
    # a third fetch with nothing new asks from the first still incomplete response and changes nothing
    third = _fetch(server, out, sid, T0 + timedelta(days=2))
    man3 = json.loads((third.snapshot / "manifest.json").read_text())
    still = sorted(rids[t] for i, t in enumerate(toks[:240]) if i % 3 == 0 and t not in late)
    assert man3["requested_from_id"] == still[0] and man3["changes"]["changed"] == [] and man3["changes"]["new"] == []
    assert (third.snapshot / "responses.csv").read_bytes() == (second.snapshot / "responses.csv").read_bytes()


def test_with_edits_after_completion_allowed_every_response_is_exported_again(server: StandInServer, tmp_path: Path) -> None:
    sid = _deploy(server, tmp_path, _keys(4)).survey_id
    col = _columns(server, sid)
    toks = _tokens(server, sid)
    r1 = _respond(server, sid, toks[0], col, complete=True, v="2")
    m = server.model
    key = m.get_session_key("popeval", PASSWORD)
    assert m.update_response(key, sid, {"id": r1, col["EFFECT[SQ001]"]: "5"}) == {"status": "Survey does not allow edit after completion"}
    first = _fetch(server, tmp_path / "o", sid, T0)
    assert m.set_survey_properties(key, sid, {"alloweditaftercompletion": "Y"}) == {"alloweditaftercompletion": True}
    assert m.update_response(key, sid, {"id": r1, col["EFFECT[SQ001]"]: "5"}) is True
    m.release_session_key(key)
    second = _fetch(server, tmp_path / "o", sid, T0 + timedelta(hours=1))
    man = json.loads((second.snapshot / "manifest.json").read_text())
    assert man["requested_from_id"] is None and "edits after completion" in man["request_reason"]
    assert man["changes"]["changed"] == [r1] and man["changes"]["completed"] == [] and second.previous == first.snapshot


def test_a_response_deleted_on_the_server_is_kept_and_reported(server: StandInServer, tmp_path: Path) -> None:
    sid = _deploy(server, tmp_path, _keys(3)).survey_id
    col = _columns(server, sid)
    toks = _tokens(server, sid)
    rids = [_respond(server, sid, t, col, complete=False) for t in toks]
    _fetch(server, tmp_path / "o", sid, T0)
    survey = server.model.surveys[sid]
    survey.responses = [r for r in survey.responses if r["id"] != rids[1]]
    second = _fetch(server, tmp_path / "o", sid, T0 + timedelta(hours=1))
    man = json.loads((second.snapshot / "manifest.json").read_text())
    assert man["changes"]["not_returned"] == [rids[1]] and man["changes"]["unchanged"] == 2 and second.responses == 3


def test_participant_pages_that_repeat_a_tid_are_refused_before_anything_is_written(server: StandInServer, tmp_path: Path) -> None:
    sid = _deploy(server, tmp_path, _keys(5)).survey_id
    tokens = server.model.surveys[sid].tokens or []
    tokens.append(dict(tokens[2]))  # a server listing tid 3 twice
    with pytest.raises(LimeSurveyFetchError, match="overlap or are out of order"):
        _fetch(server, tmp_path / "o", sid, T0)
    assert not (tmp_path / "o" / str(sid)).exists() or not any((tmp_path / "o" / str(sid)).iterdir())


def test_no_progress_bar_when_progress_is_off(server: StandInServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from analysis.config import config_from_dict
    from analysis.pipeline import _resolve_snapshot

    sid = _deploy(server, tmp_path, _keys(2)).survey_id
    for k, v in {"LIMESURVEY_URL": server.url, "LIMESURVEY_USER": "popeval", "LIMESURVEY_PASSWORD": PASSWORD}.items():
        monkeypatch.setenv(k, v)
    cfg = config_from_dict({"study": {"name": "p", "derived_dir": str(tmp_path / "d")},
                            "survey": {"survey_id": sid, "snapshot": "fetch", "snapshots_dir": str(tmp_path / "s")},
                            "admin": {"dwse": "a.csv", "vdab": "b.csv"}})
    _resolve_snapshot(cfg, progress=False)
    assert "LimeSurvey fetch" not in capsys.readouterr().err
    _resolve_snapshot(cfg, progress=True)
    assert "LimeSurvey fetch" in capsys.readouterr().err


# ----------------------------------------------------------------------------- snapshot read side


def _snapshot(server: StandInServer, tmp_path: Path, n: int = 3) -> tuple[int, Path]:
    sid = _deploy(server, tmp_path, _keys(n)).survey_id
    col = _columns(server, sid)
    for t in _tokens(server, sid):
        _respond(server, sid, t, col, complete=True)
    return sid, _fetch(server, tmp_path / "s", sid, T0).snapshot


def test_every_snapshot_file_is_checked_against_the_manifest(server: StandInServer, tmp_path: Path) -> None:
    from survey.parse import parse_snapshot

    _, snap = _snapshot(server, tmp_path)
    man = json.loads((snap / "manifest.json").read_text())
    assert set(man["files"]) == {"responses.csv", "participants.json", "fieldmap.json"}
    assert all(oct(p.stat().st_mode)[-3:] == "444" for p in snap.iterdir())
    assert not [p for p in snap.parent.iterdir() if p.name.startswith(".")]  # no temporary file or folder left
    f = snap / "participants.json"
    f.chmod(0o644)
    f.write_bytes(f.read_bytes().replace(b'"tid":1,', b'"tid":7,', 1))
    with pytest.raises(DataValidationError, match="changed after it was written") as exc:
        parse_snapshot(snap)
    assert "participants.json" in str(exc.value) and man["files"]["participants.json"] in str(exc.value)
    f.unlink()
    with pytest.raises(DataValidationError, match="is missing"):
        parse_snapshot(snap)


def test_latest_never_skips_a_half_written_newest_snapshot_silently(server: StandInServer, tmp_path: Path) -> None:
    from analysis.config import config_from_dict
    from analysis.pipeline import _resolve_snapshot
    from survey.snapshot import SnapshotWarning, latest_snapshot

    sid, snap = _snapshot(server, tmp_path)
    half = snap.parent / "20991231T000000Z"
    half.mkdir()
    (half / "responses.csv").write_bytes(b"\xef\xbb\xbf")
    cfg = config_from_dict({"study": {"name": "p", "derived_dir": str(tmp_path / "d")},
                            "survey": {"survey_id": sid, "snapshot": "latest", "snapshots_dir": str(tmp_path / "s")},
                            "admin": {"dwse": "a.csv", "vdab": "b.csv"}})
    with pytest.warns(SnapshotWarning, match=rf"20991231T000000Z is newer but was not used: it has no manifest.json.*using {snap.name}"):
        assert _resolve_snapshot(cfg) == snap
    (half / "manifest.json").write_text('{"files": {"responses.csv": "00", "participants.json": "00"}')
    with pytest.warns(SnapshotWarning, match="not valid JSON"):
        assert latest_snapshot(tmp_path / "s", sid) == snap


def test_a_zero_byte_export_never_becomes_a_snapshot(server: StandInServer, tmp_path: Path) -> None:
    from survey.fetch import ingest_file

    sid, snap = _snapshot(server, tmp_path)
    server.inject("export_responses", "empty", times=2)
    with pytest.raises(LimeSurveyFetchError, match=r"empty \(0 bytes"):
        _fetch(server, tmp_path / "s", sid, T0 + timedelta(hours=1))
    empty = tmp_path / "export.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataValidationError, match=r"empty \(0 bytes\)") as exc:
        ingest_file(empty, sid, tmp_path / "s", now=T0 + timedelta(hours=2))
    assert str(empty) in str(exc.value)
    assert [p.name for p in (tmp_path / "s" / str(sid)).iterdir()] == [snap.name]


def test_a_repeated_response_id_in_an_export_is_an_error(server: StandInServer, tmp_path: Path) -> None:
    from survey.fetch import ingest_file

    sid, snap = _snapshot(server, tmp_path)
    lines = (snap / "responses.csv").read_bytes().split(b"\r\n")
    dup = tmp_path / "export.csv"
    dup.write_bytes(b"\r\n".join([*lines[:3], lines[2].replace(b'"4"', b'"5"'), *lines[3:]]))
    with pytest.raises(DataValidationError, match="occurs twice") as exc:
        ingest_file(dup, sid, tmp_path / "s", now=T0 + timedelta(hours=1))
    assert "row 3" in str(exc.value) and "column 'id'" in str(exc.value)
    assert [p.name for p in (tmp_path / "s" / str(sid)).iterdir()] == [snap.name]


def test_an_export_without_the_questionnaire_columns_is_refused_at_parse_time(tmp_path: Path) -> None:
    from survey.lsformat import write_csv_export
    from survey.parse import parse_snapshot

    cols = ["id", "submitdate", "lastpage", "startlanguage", "seed", "token", "startdate", "datestamp", "Q1", "Q2[SQ001]"]
    f = tmp_path / "other_survey.csv"
    f.write_bytes(write_csv_export(cols, [{"id": 1, "submitdate": "2026-01-01 10:00:00", "Q1": "A1"}]))
    with pytest.raises(DataValidationError, match="none of the questionnaire's columns") as exc:
        parse_snapshot(f)
    assert "INCENTIVE[SQ001]" in str(exc.value) and "Q2[SQ001]" in str(exc.value) and "code headings" in str(exc.value)


def test_a_participants_csv_where_json_is_expected_is_a_clear_error(server: StandInServer, tmp_path: Path) -> None:
    from survey.fetch import ingest_file

    sid, snap = _snapshot(server, tmp_path)
    parts = tmp_path / "participants.csv"
    parts.write_text("tid,token,attribute_1\n1,abc,0123\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match="not JSON") as exc:
        ingest_file(snap / "responses.csv", sid, tmp_path / "s", participants=parts, now=T0 + timedelta(hours=1))
    assert str(parts) in str(exc.value) and "(a CSV?)" in str(exc.value)
    assert [p.name for p in (tmp_path / "s" / str(sid)).iterdir()] == [snap.name]


def test_a_snapshot_failing_validation_is_never_written(server: StandInServer, tmp_path: Path) -> None:
    from survey.fetch import ingest_file
    from survey.parse import read_participants

    sid, snap = _snapshot(server, tmp_path)
    plist = json.loads((snap / "participants.json").read_text())
    dup = tmp_path / "participants.json"
    dup.write_text(json.dumps([*plist, plist[0]]), encoding="utf-8")
    with pytest.raises(DataValidationError, match="Duplicate key") as exc:
        ingest_file(snap / "responses.csv", sid, tmp_path / "s", participants=dup, now=T0 + timedelta(hours=1))
    assert "fetch the survey again" in str(exc.value) and "data owner" not in str(exc.value)
    assert sorted(p.name for p in (tmp_path / "s" / str(sid)).iterdir()) == [snap.name]  # no temporary folder either
    with pytest.raises(DataValidationError, match="participant pages overlapped"):
        read_participants(dup)
