"""popeval run with ``snapshot = "fetch"``: deploy, answer, fetch over RC2, and the same results.

The demo study's survey is deployed to the stand-in LimeSurvey server (real HTTP, the real citric
client), its responses are entered on the server, and the pipeline fetches them itself.  The results
must equal those of a run on the demo's own snapshot: the fetch path changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis.config import config_from_dict
from analysis.pipeline import run
from analysis.synth import DEMO_SNAPSHOT, DEMO_SURVEY_ID, generate
from tests.limesurvey_server import LimeSurveyModel, StandInServer

PASSWORD = "pipeline-Pa55word"


def _config(study: Path, derived: Path, snapshot: str, snapshots_dir: Path, survey_id: int) -> Any:
    return config_from_dict(
        {
            "study": {"name": "fetched", "seed": 5, "derived_dir": str(derived)},
            "survey": {"survey_id": survey_id, "snapshot": snapshot, "snapshots_dir": str(snapshots_dir)},
            "admin": {"dwse": str(study / "admin" / "dwse_applications.csv"), "vdab": str(study / "admin" / "vdab_trajectories.csv")},
            # no replicates: the estimates, counts and flow are compared, which the replicate SEs do not touch
            "effects": {"replicates": 0, "workers": 1, "methods": ["matching", "regression", "naive"]},
            "report": {"render": False},
        }
    )


def test_fetching_from_limesurvey_gives_the_same_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from survey.deploy import deploy, read_invitations
    from survey.lss import build_lss

    study = tmp_path / "study"
    generate(persons=12_000, seed=8, out=study)
    snap = study / "survey" / str(DEMO_SURVEY_ID) / DEMO_SNAPSHOT
    demo_tokens = {p["token"]: p["attribute_1"] for p in json.loads((snap / "participants.json").read_text())}
    text = (snap / "responses.csv").read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text, newline=""), delimiter=";"))

    with StandInServer(LimeSurveyModel({"popeval": PASSWORD})) as srv:
        res = deploy(build_lss(), read_invitations(study / "survey" / "invitations.csv"), url=srv.url, user="popeval", password=PASSWORD, retries=0)
        sid = res.survey_id
        assert res.participants_added == len(demo_tokens)
        m = srv.model
        key = m.get_session_key("popeval", PASSWORD)
        server_token = {p["attribute_1"]: p["token"] for p in m.list_participants(key, sid, 0, 100_000, False, ["attribute_1"])}
        fm = {v["title"] + (f"[{v['aid']}]" if v["aid"] else ""): k for k, v in m.get_fieldmap(key, sid).items() if v["title"]}
        fixed = ("submitdate", "lastpage", "startlanguage", "seed", "startdate", "datestamp")
        for r in rows:
            data: dict[str, Any] = {c: r[c] for c in fixed}
            person = demo_tokens.get(r["token"])
            # a response whose token has no participant keeps an unknown token, as in the demo
            data["token"] = server_token[person] if person is not None else r["token"]
            for col, value in r.items():
                if col in fm and value != "":
                    data[fm[col]] = value
                elif col in fm and col.startswith("INCENTIVE["):
                    data[fm[col]] = ""
            m.add_response(key, sid, data)
        m.release_session_key(key)
        monkeypatch.setenv("LIMESURVEY_URL", srv.url)
        monkeypatch.setenv("LIMESURVEY_USER", "popeval")
        monkeypatch.setenv("LIMESURVEY_PASSWORD", PASSWORD)
        capsys.readouterr()
        fetched = run(_config(study, tmp_path / "d1", "fetch", tmp_path / "snapshots", sid), progress=False)
        assert "LimeSurvey fetch" not in capsys.readouterr().err  # no progress bar when progress is off

    local = run(_config(study, tmp_path / "d2", str(snap), study / "survey", DEMO_SURVEY_ID), progress=False)
    from analysis.bundle import read_bundle

    a, b = read_bundle(fetched.bundle), read_bundle(local.bundle)
    flow_a = a.table("response_flow").set_index("step")["n"]
    assert flow_a["started"] > 100
    pd.testing.assert_series_equal(flow_a, b.table("response_flow").set_index("step")["n"])
    cols = ["outcome", "method", "scale", "estimate", "n_treated", "n_control"]
    pd.testing.assert_frame_equal(a.table("effects")[cols], b.table("effects")[cols], rtol=1e-10)
    snaps = list((tmp_path / "snapshots" / str(sid)).glob("*/manifest.json"))
    assert len(snaps) == 1
    assert json.loads(snaps[0].read_text())["counts"]["responses"] == len(rows)
