"""Replay every recorded RC2 call against the stand-in server and compare the bytes.

The golden transcripts (recorded from a real LimeSurvey 6.14 server, MariaDB and PostgreSQL) live in
``LIMESURVEY_GOLDEN`` (default: ``../shared/limesurvey`` beside the repository).  Each call's raw
request body is sent over HTTP to the stand-in server (with the live session key substituted), and the
status, content type and body must equal the recorded ones.  Only the documented random parts are
masked: session keys, tokens drawn by ``create_tokens``, the creation date, the server's asset and file
paths in the HTTP 500 page, and the question-text row id (an auto-increment the transcripts do not
record).  Group and question ids are taken from each transcript's ``context``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.limesurvey_server import LimeSurveyModel, StandInServer

GOLDEN = Path(os.environ.get("LIMESURVEY_GOLDEN", Path(__file__).resolve().parents[2] / "shared" / "limesurvey"))
ORDER = ("01_session_key", "00_setup", "02_structure", "03_export_responses", "04_participants", "05_summary", "07_site_settings", "06_errors")
#: recorded later, in this order, with one session key (made before 08, not recorded) until 12 releases it
LATER = ("08_participants_paging", "09_repeat_activation", "10_response_lifecycle", "12_errors_more", "11_login_lockout")

pytestmark = pytest.mark.skipif(not (GOLDEN / "00_setup.json").is_file(), reason="golden LimeSurvey transcripts not available")


def _mask(body: str, call: dict[str, Any]) -> str:
    body = re.sub(r'(?:/[\w.-]+)*/assets/[0-9a-f]+/', "<ASSETS>/", body)
    body = re.sub(r"passed in \S+/application/", "passed in <ROOT>/application/", body)
    body = re.sub(r'"datecreated":"[^"]*"', '"datecreated":"<DATE>"', body)
    body = re.sub(r'"questionl10ns":\{"id":\d+', '"questionl10ns":{"id":<N>', body)
    if call["method"] == "get_session_key":
        body = re.sub(r'"result":"[A-Za-z0-9_~]{32}"', '"result":"<KEY>"', body)
    if call["method"] == "add_participants" and call["params"][-1] is True:
        body = re.sub(r'"token":"[A-Za-z0-9]{15}"', '"token":"<TOKEN>"', body)
    return body


def _first_ids(context: dict[str, Any]) -> tuple[int, int]:
    parts = [re.match(r"\d+X(\d+)X(\d+)", c) for c in context["code_to_column"].values()]
    return min(int(m.group(1)) for m in parts if m), min(int(m.group(2)) for m in parts if m)


def _replay(folder: Path) -> list[tuple[str, str, str]]:
    import requests

    setup = json.loads((folder / "00_setup.json").read_text(encoding="utf-8"))
    gid, qid = _first_ids(setup["context"])
    password = next(c for c in json.loads((folder / "01_session_key.json").read_text())["calls"] if c["label"] == "success")["params"][1]
    model = LimeSurveyModel({"admin": password}, first_gid=gid, first_qid=qid)
    model.add_foreign_survey(111111, "RC2 test survey")
    mismatches: list[tuple[str, str, str]] = []
    key = ""
    with StandInServer(model) as server, requests.Session() as http:
        for name in ORDER:
            for call in json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))["calls"]:
                where = f"{name}#{call['step']} {call['label']}"
                headers = dict(call["request_headers"])
                if call["http_method"] == "GET":
                    resp = http.get(server.url, headers=headers, timeout=10)
                else:
                    body = call["request_raw_body"].replace("<SESSION_KEY>", key)
                    resp = http.post(server.url, data=body.encode("utf-8"), headers=headers, timeout=10)
                if call["method"] == "get_session_key" and resp.headers["content-type"] == "application/json":
                    result = resp.json()["result"]
                    if isinstance(result, str):
                        key = result
                got = _mask(resp.content.decode("utf-8"), call)
                want = _mask(call["raw_response_body"], call)
                if call["method"] == "list_questions" and folder.name == "pgsql":
                    # the row order of list_questions differs between database engines
                    got_j, want_j = json.loads(got), json.loads(want)
                    got = json.dumps(sorted(json.dumps(x) for x in got_j["result"]))
                    want = json.dumps(sorted(json.dumps(x) for x in want_j["result"]))
                if resp.status_code != call["http_status"]:
                    mismatches.append((where, f"HTTP {call['http_status']}", f"HTTP {resp.status_code}"))
                ct = resp.headers.get("content-type", "")
                if ct != call["content_type"]:
                    mismatches.append((where, call["content_type"], ct))
                if got != want:
                    i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
                    mismatches.append((where, want[max(0, i - 60) : i + 80], got[max(0, i - 60) : i + 80]))
    return mismatches


def _compare(where: str, call: dict[str, Any], resp: Any, got: str, want: str, out: list[tuple[str, str, str]]) -> None:
    if resp.status_code != call["http_status"]:
        out.append((where, f"HTTP {call['http_status']}", f"HTTP {resp.status_code}"))
    ct = resp.headers.get("content-type", "")
    if ct != call["content_type"]:
        out.append((where, call["content_type"], ct))
    if got != want:
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
        out.append((where, want[max(0, i - 60) : i + 80], got[max(0, i - 60) : i + 80]))


def _http_date(call: dict[str, Any]) -> float:
    from email.utils import parsedate_to_datetime

    date = next(v for k, v in call["response_headers"].items() if k.lower() == "date")
    return parsedate_to_datetime(date).timestamp()


def _replay_later() -> tuple[int, list[tuple[str, str, str]]]:
    """Replay 08-12 on a fresh stand-in whose clock follows the recording.

    The server's clock is set, before each call, to the HTTP ``Date`` of the recorded reply (so
    ``add_response`` stamps the recorded times); in 11 it is the time of the 3rd failed login plus the
    recorded ``seconds_since_third_failure``.  The access codes the real server drew (``create_tokens``)
    and the random id it gave the second import are handed to the stand-in, so every body, tokens
    included, must come out byte for byte.
    """
    import requests

    files = {n: json.loads((GOLDEN / f"{n}.json").read_text(encoding="utf-8")) for n in LATER}
    tokens = [r["token"] for c in files["08_participants_paging"]["calls"] if c["method"] == "add_participants"
              for r in json.loads(c["raw_response_body"])["result"]]
    copy_sid = files["09_repeat_activation"]["context"]["copy_survey_id"]
    login = next(c for c in files["11_login_lockout"]["calls"] if c["label"] == "success_resets_counter")
    user, password = json.loads(login["request_raw_body"])["params"]
    now = [0.0]
    model = LimeSurveyModel({user: password}, clock=lambda: now[0], tokens=tokens, survey_ids=[copy_sid])
    first_date = _http_date(files["08_participants_paging"]["calls"][0])
    now[0] = first_date
    key = model.get_session_key(user, password)  # the unrecorded login before 08
    mismatches: list[tuple[str, str, str]] = []
    n = 0
    with StandInServer(model) as server, requests.Session() as http:
        base = server.url[: -len(server.PATH)]
        for name in LATER:
            context = files[name]["context"]
            if "code_to_column" in context:
                model.next_gid, model.next_qid = _first_ids(context)
            third = next((_http_date(c) for c in files[name]["calls"] if c.get("seconds_since_third_failure") == 0.0), 0.0)
            for call in files[name]["calls"]:
                n += 1
                where = f"{name}#{call['step']} {call['label']}"
                s = call.get("seconds_since_third_failure")
                now[0] = third + s if s is not None else _http_date(call)
                body = call["request_raw_body"].replace("<SESSION_KEY>", key)
                resp = http.post(base + call["path"], data=body.encode("utf-8"), headers=dict(call["request_headers"]), timeout=30)
                if call["method"] == "get_session_key" and resp.headers.get("content-type") == "application/json":
                    result = resp.json()["result"]
                    if isinstance(result, str):
                        key = result
                if call["method"] == "release_session_key" and name == "11_login_lockout" and call["step"] == 27:
                    key = next(k for k in model.sessions)  # 28 releases the key from before the lockout
                got = _mask(resp.content.decode("utf-8"), {**call, "method": "later"})
                want = _mask(call["raw_response_body"], {**call, "method": "later"})
                if call["method"] == "get_session_key":
                    got = re.sub(r'"result":"[A-Za-z0-9_~]{32}"', '"result":"<KEY>"', got)
                    want = re.sub(r'"result":"[A-Za-z0-9_~]{32}"', '"result":"<KEY>"', want)
                _compare(where, call, resp, got, want, mismatches)
    return n, mismatches


def test_later_transcripts_08_to_12_are_reproduced_byte_for_byte() -> None:
    """Participant paging (tid lower bound), repeat activation, the response life cycle, the login lockout,
    wrong endpoint paths and released keys, as the real server answered."""
    if not (GOLDEN / "08_participants_paging.json").is_file():
        pytest.skip("transcripts 08-12 not available")
    n, mismatches = _replay_later()
    assert n == 126
    assert mismatches == []


@pytest.mark.parametrize("engine", ["mariadb", "pgsql"])
def test_every_recorded_call_is_reproduced_byte_for_byte(engine: str) -> None:
    folder = GOLDEN if engine == "mariadb" else GOLDEN / "pgsql"
    n_calls = sum(len(json.loads((folder / f"{n}.json").read_text())["calls"]) for n in ORDER)
    assert n_calls == 112
    mismatches = _replay(folder)
    assert mismatches == []


def test_decoded_exports_equal_the_recorded_files() -> None:
    """Every base64 export decodes to the recorded file (checked by SHA-256 in the transcript)."""
    import base64
    import hashlib

    n = 0
    for name in ORDER:
        for call in json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))["calls"]:
            if "decoded_payload_sha256" not in call:
                continue
            payload = base64.b64decode(json.loads(call["raw_response_body"])["result"])
            assert hashlib.sha256(payload).hexdigest() == call["decoded_payload_sha256"]
            saved = call.get("decoded_payload_saved_as") or []
            for name_ in [saved] if isinstance(saved, str) else saved:
                assert (GOLDEN / name_).read_bytes() == payload
            n += 1
    assert n >= 16
