"""Fetch the survey from LimeSurvey (RemoteControl 2, through citric) into immutable snapshots.

A snapshot is a folder ``<out>/<survey id>/<UTC timestamp>/`` holding

* ``responses.csv``: the LimeSurvey CSV export (code headings, short answers, all completion
  states), byte for byte as LimeSurvey writes it; for an incremental fetch, the previous snapshot's
  responses merged with the new ones (each response id once, the newer copy wins);
* ``participants.json``: every participant (``list_participants(..., ['attribute_1'])``, paged by
  tid, each once);
* ``fieldmap.json``: the ``get_fieldmap`` result (resolves internal SGQA column names);
* ``export.csv`` (incremental fetches): the export exactly as received, so the snapshot can be
  rebuilt from its predecessor (:func:`survey.snapshot.verify_chain`);
* ``manifest.json``: survey id, server version, UTC time, export settings, the id range asked for
  and why, the new, changed and completed response ids, counts, the SHA-256 of every other file,
  and the previous snapshot with the SHA-256 of its manifest.

Guarantees: credentials come only from the environment (``LIMESURVEY_URL``, ``LIMESURVEY_USER``,
``LIMESURVEY_PASSWORD``) and are never logged or shown; one login per command, never retried after a
refusal (LimeSurvey locks an address out after 3 refused logins); a snapshot is validated and written
file by file into a hidden temporary folder that is renamed when complete, so a failed fetch leaves
nothing; the session key is always released; transient faults (connection errors, time-outs,
truncated or undecodable replies) are retried with exponential backoff, a bounded number of times.
"""

from __future__ import annotations

import binascii
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from survey.errors import ConfigError, DataValidationError, LimeSurveyFetchError
from survey.hashing import sha256_file
from survey.snapshot import (
    Merge,
    latest_snapshot,
    merge_responses,
    read_snapshot_rows,
    verify_snapshot,
    write_snapshot,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENV_PASSWORD",
    "ENV_URL",
    "ENV_USER",
    "FetchResult",
    "RpcStatus",
    "credentials_from_env",
    "fetch",
    "ingest_file",
    "list_all_participants",
    "open_client",
    "rpc_call",
]

ENV_URL = "LIMESURVEY_URL"
ENV_USER = "LIMESURVEY_USER"
ENV_PASSWORD = "LIMESURVEY_PASSWORD"

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_EXPORT = {"document_type": "csv", "heading_type": "code", "response_type": "short", "completion_status": "all"}
_NO_DATA = "No Data, could not get max id."


class _TransientError(Exception):
    """A fault worth retrying (network, time-out, damaged reply)."""


@dataclass(frozen=True)
class FetchResult:
    """What a fetch (or a file ingest) wrote.

    Attributes
    ----------
    snapshot
        The new snapshot folder.
    survey_id
        The survey.
    new_responses
        Responses not in the previous snapshot.
    responses, complete, participants
        Counts in the new snapshot.
    previous
        The snapshot this one extends, if any.
    server_version
        LimeSurvey's ``versionnumber`` (or ``file`` for an ingested export).
    changed_responses
        Responses of the previous snapshot that changed (a late completion, an edit).
    completed_since
        Of those, the responses that were incomplete and are now complete.
    """

    snapshot: Path
    survey_id: int
    new_responses: int
    responses: int
    complete: int
    participants: int
    previous: Path | None
    server_version: str
    changed_responses: int = 0
    completed_since: int = 0

    def summary(self) -> str:
        """A short plain-text account."""
        prev = self.previous.name if self.previous else "none"
        return (
            f"Survey {self.survey_id} snapshot {self.snapshot.name} (LimeSurvey {self.server_version})\n"
            f"  new responses      {self.new_responses:>8,}\n"
            f"  changed responses  {self.changed_responses:>8,}  (completed since the previous snapshot {self.completed_since:,})\n"
            f"  responses in total {self.responses:>8,}  (complete {self.complete:,})\n"
            f"  participants       {self.participants:>8,}\n"
            f"  previous snapshot  {prev}"
        )

    def to_frame(self) -> pd.DataFrame:
        """The counts as a one-row frame."""
        import pandas as pd

        return pd.DataFrame(
            [{"survey_id": self.survey_id, "snapshot": self.snapshot.name, "new_responses": self.new_responses, "responses": self.responses,
              "complete": self.complete, "participants": self.participants, "previous": self.previous.name if self.previous else None,
              "server_version": self.server_version, "changed_responses": self.changed_responses,
              "completed_since": self.completed_since}]
        )


# ----------------------------------------------------------------------------- credentials and client


def credentials_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """``(url, user, password)`` from ``LIMESURVEY_URL``, ``LIMESURVEY_USER``, ``LIMESURVEY_PASSWORD``.

    Raises
    ------
    ConfigError
        Naming the missing variables (never their values).
    """
    env = os.environ if env is None else env
    missing = [n for n in (ENV_URL, ENV_USER, ENV_PASSWORD) if not env.get(n)]
    if missing:
        raise ConfigError(
            "LimeSurvey credentials are not set",
            param=", ".join(missing),
            expected=f"the environment variables {ENV_URL}, {ENV_USER} and {ENV_PASSWORD}",
            found="not set: " + ", ".join(missing),
            hint="export them in the shell (never on the command line or in a file under version control); "
            "the URL ends in /index.php/admin/remotecontrol",
        )
    return env[ENV_URL], env[ENV_USER], env[ENV_PASSWORD]


def _requests_session(timeout: float) -> Any:
    import requests

    class _TimeoutSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs.setdefault("timeout", timeout)
            return super().request(*args, **kwargs)

    return _TimeoutSession()


def _classify(exc: BaseException) -> BaseException:
    """Turn a transport-level exception into :class:`_TransientError` when a retry may help."""
    import requests
    from citric import exceptions as cx

    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return _TransientError(f"HTTP {status}") if status in (502, 503, 504) else exc
    if isinstance(exc, requests.Timeout):
        return _TransientError("the server did not answer in time")
    if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return _TransientError("the connection was lost")
    if isinstance(exc, cx.InvalidJSONResponseError):
        return _TransientError("the reply was not valid JSON (truncated?)")
    if isinstance(exc, (json.JSONDecodeError, binascii.Error)):
        return _TransientError(str(exc))
    return exc


def _retry(what: str, fn: Callable[[], _T], retries: int, backoff: float) -> _T:
    """Run ``fn``; retry transient faults with exponential backoff (``backoff * 2**k`` seconds)."""
    attempt = 0
    while True:
        try:
            return fn()
        except _TransientError as exc:
            err: BaseException = exc
        except Exception as exc:
            err = _classify(exc)
            if not isinstance(err, _TransientError):
                raise
        attempt += 1
        if attempt > retries:
            raise LimeSurveyFetchError(
                f"LimeSurvey call failed: {what}",
                expected="an answer from the server",
                found=_scrub(f"{err} (after {retries + 1} attempts)"),
                hint="check the network and the server; the fetch can simply be run again (nothing was written)",
            ) from err
        delay = backoff * (2 ** (attempt - 1))
        _log.warning("%s: %s; retrying in %.2f s (attempt %d of %d)", what, err, delay, attempt + 1, retries + 1)
        time.sleep(delay)


def _safe_url(url: str) -> str:
    """``url`` without user info, query or fragment (never show credentials)."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    host = u.hostname or ""
    if u.port:
        host = f"{host}:{u.port}"
    return f"{u.scheme}://{host}{u.path}" if u.scheme else u.path


def _lockout_message(status: str) -> str | None:
    """The lock's length as LimeSurvey states it ("Please wait 10 minutes ..."), if ``status`` is a lockout."""
    import re

    if "maximum login attempts" not in status:
        return None
    m = re.search(r"wait (\d+) minutes?", status)
    return f"{m.group(1)} minutes" if m else "a while (the server's timeOutTime)"


def open_client(url: str, user: str, password: str, *, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0) -> Any:
    """A logged-in :class:`citric.Client` (the session key is released by ``client.close()``).

    A login is attempted once; only a fault of the transport (no answer, a dropped connection) is
    retried.  A refused login is never retried: each refusal counts towards LimeSurvey's lockout.

    Raises
    ------
    LimeSurveyFetchError
        Wrong credentials, a login lockout, the RemoteControl interface disabled, a wrong endpoint
        path (with the HTTP status and the path tried), or the server unreachable.
    """
    import requests
    from citric import Client
    from citric import exceptions as cx

    def login() -> Any:
        return Client(url, user, password, requests_session=_requests_session(timeout))

    try:
        return _retry("log in (get_session_key)", login, retries, backoff)
    except cx.LimeSurveyStatusError as exc:
        lock = _lockout_message(str(exc))
        if lock is not None:
            raise LimeSurveyFetchError(
                "LimeSurvey is refusing logins from this computer after repeated failed logins (a lockout)",
                param=ENV_URL,
                found=str(exc),
                detail=f"the lock lasts {lock} from the last failed login; logins during it, even with the right password, "
                "are refused but do not extend it; popeval tried once and does not retry",
                hint=f"wait {lock}, then run the command again (popeval logs in once per command, so it never extends the "
                "lock); a LimeSurvey administrator can lift it at once by emptying the failed_login_attempts table",
            ) from None
        raise LimeSurveyFetchError(
            "LimeSurvey rejected the credentials",
            param=f"{ENV_USER}/{ENV_PASSWORD}",
            found=str(exc),
            hint=f"check {ENV_USER} and {ENV_PASSWORD} before trying again (after 3 refused logins in a row LimeSurvey locks "
            "this computer out for 10 minutes); the user needs RemoteControl access to the survey",
        ) from None
    except cx.RPCInterfaceNotEnabledError:
        raise LimeSurveyFetchError(
            "The LimeSurvey RemoteControl interface answered with an empty reply",
            param=ENV_URL,
            found=f"an empty HTTP 200 reply from {_safe_url(url)}",
            hint="enable JSON-RPC under Configuration > Global settings > Interfaces (RPC interface: JSON-RPC), "
            "and check that the URL ends in /index.php/admin/remotecontrol",
        ) from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        tried = _safe_url(exc.response.url if exc.response is not None and exc.response.url else url)
        if status in (400, 404, 405):
            hint = "check the URL: it ends in /index.php/admin/remotecontrol"
            if status == 400:
                hint += " (LimeSurvey answers HTTP 400 'The CSRF token could not be verified' to a POST to any other path)"
        else:
            hint = "the server failed to answer; see its error log, or try again later"
        raise LimeSurveyFetchError(
            f"LimeSurvey answered HTTP {status} instead of the RemoteControl interface",
            param=ENV_URL,
            found=f"HTTP {status} from {tried}",
            hint=hint,
        ) from None
    except LimeSurveyFetchError:
        raise
    except Exception as exc:
        raise LimeSurveyFetchError(
            "Could not reach LimeSurvey", param=ENV_URL, found=f"{type(exc).__name__} at {_safe_url(url)}",
            hint="check the URL and the network",
        ) from None


@dataclass(frozen=True)
class RpcStatus:
    """A status reply that the caller allowed (``"No survey participants found."`` and the like)."""

    text: str


_HINTS = {
    "Invalid session key": "the session expired; run the command again",
    "No permission": "the survey id does not exist or the user may not export it",
    "Error: Invalid survey ID": "check survey_id in the study file or --survey-id: `popeval deploy` prints the id LimeSurvey gave "
    "the survey (it keeps a requested id only when that id is free)",
}


def _scrub(text: str) -> str:
    """``text`` without the user info of any URL in it (``https://user:secret@host`` -> ``https://host``)."""
    import re

    return re.sub(r"(\w+://)[^/@\s]+@", r"\1", text)


def rpc_call(what: str, fn: Callable[[], _T], *, retries: int, backoff: float, allow: tuple[str, ...] = ()) -> _T | RpcStatus:
    """Run a typed citric call; a status in ``allow`` comes back as :class:`RpcStatus`, any other is an error.

    Every failure becomes a :class:`LimeSurveyFetchError` that names the call (never a traceback, and
    never a URL's user info).
    """
    import requests
    from citric import exceptions as cx

    try:
        return _retry(what, fn, retries, backoff)
    except cx.LimeSurveyStatusError as exc:
        st = str(exc)
        if st in allow:
            return RpcStatus(st)
        raise LimeSurveyFetchError(f"LimeSurvey refused {what}", found=st,
                                   hint=_HINTS.get(st, "see the LimeSurvey RemoteControl documentation for this status")) from None
    except cx.LimeSurveyApiError as exc:
        raise LimeSurveyFetchError(f"LimeSurvey reported an error in {what}", found=str(exc),
                                   hint="the server raised an exception; see its log") from None
    except (LimeSurveyFetchError, DataValidationError):
        raise
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        raise LimeSurveyFetchError(f"LimeSurvey answered HTTP {status} to {what}", param=ENV_URL,
                                   found=_scrub(str(exc)), hint="the server failed; see its error log, or try again later") from None
    except Exception as exc:
        raise LimeSurveyFetchError(f"LimeSurvey call failed: {what}", found=_scrub(f"{type(exc).__name__}: {exc}"),
                                   hint="run the command again; if it persists, check the server") from None


NO_PARTICIPANTS = "No survey participants found."
NO_PARTICIPANTS_TABLE = "Error: No survey participants table"


def list_all_participants(client: Any, survey_id: int, *, attributes: Sequence[str] = ("attribute_1",), page_size: int = 1000,
                          retries: int = 3, backoff: float = 1.0) -> list[dict[str, Any]] | None:
    """Every participant of ``survey_id``, each once, in tid order (``None``: no participants table).

    LimeSurvey's ``iStart`` is a lower bound on ``tid`` (``WHERE tid >= iStart ORDER BY tid``), not an
    offset, so each page starts at the last tid + 1; paging ends at the status "No survey
    participants found.".

    Raises
    ------
    LimeSurveyFetchError
        The server sent a tid twice or out of order (the paging cannot be trusted).
    """
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    start = 0
    while True:
        lo = start
        page = rpc_call("list_participants", partial(client.list_participants, survey_id, start=lo, limit=page_size, attributes=list(attributes)),
                     retries=retries, backoff=backoff, allow=(NO_PARTICIPANTS, NO_PARTICIPANTS_TABLE))
        if isinstance(page, RpcStatus):
            return None if page.text == NO_PARTICIPANTS_TABLE and not rows else rows
        if not page:
            return rows
        tids = [int(p["tid"]) for p in page]
        if tids != sorted(tids) or tids[0] < lo or seen.intersection(tids) or len(set(tids)) != len(tids):
            raise LimeSurveyFetchError(
                "LimeSurvey's participant pages overlap or are out of order", param="list_participants",
                expected=f"tids from {lo} upwards in increasing order, each once", found=f"tids {tids[0]}..{tids[-1]} ({len(tids)} rows)",
                hint="nothing was written; run the command again",
            )
        seen.update(tids)
        rows.extend(page)
        start = tids[-1] + 1


# ----------------------------------------------------------------------------- fetch


def _progress(enabled: bool, total: int) -> Any:
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc="LimeSurvey fetch", unit="step", file=sys.stderr, disable=not enabled, leave=False)


def _check_before_writing(folder: Path) -> None:
    """The snapshot must parse as one (participants by the data model, response ids once) before it is published."""
    from survey.parse import read_participants

    read_snapshot_rows(folder)
    if (folder / "participants.json").is_file():
        read_participants(folder)


def _incomplete_ids(prev: tuple[list[str], dict[int, list[str | None]]]) -> list[int]:
    header, rows = prev
    if "submitdate" not in header:
        return []
    i = header.index("submitdate")
    return sorted(k for k, r in rows.items() if not r[i])


def fetch(
    survey_id: int,
    out: str | Path = "data_raw/survey",
    *,
    url: str | None = None,
    user: str | None = None,
    password: str | None = None,
    full: bool = False,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
    page_size: int = 1000,
    progress: bool = True,
    now: datetime | None = None,
) -> FetchResult:
    """Fetch responses and participants of ``survey_id`` into a new snapshot under ``out``.

    An incremental fetch (the default when a snapshot exists) exports every response from the first
    one that was incomplete in the latest snapshot (or, if none was, above its highest id) and merges
    them in: a participant who stops midway and completes later keeps the response id, and that
    completion is picked up.  When the survey allows edits after completion, a complete response may
    change too, so every response is exported again.  The manifest records what was asked for, the
    new, changed and completed response ids, the export received (``export.csv``) and the previous
    snapshot's manifest hash, so :func:`survey.snapshot.verify_chain` can rebuild each snapshot.

    Parameters
    ----------
    survey_id
        The LimeSurvey survey id.
    out
        The snapshot root (``<out>/<survey id>/<UTC timestamp>/``).
    url, user, password
        Default to the environment (:func:`credentials_from_env`); pass them only from code.
    full
        Ignore earlier snapshots and export every response.
    timeout
        Seconds to wait for each HTTP reply.
    retries, backoff
        Transient faults are retried ``retries`` times, waiting ``backoff * 2**k`` seconds.
    page_size
        Participants per ``list_participants`` call.
    progress
        Show a progress bar on stderr.
    now
        The snapshot time (UTC); defaults to the current time.

    Returns
    -------
    FetchResult

    Raises
    ------
    LimeSurveyFetchError
        Credentials rejected, survey missing or not active, or the server failing past the retries.
        Nothing is written then.
    DataValidationError
        The export or the participants would not make a valid snapshot (nothing is written).
    """
    if url is None or user is None or password is None:
        env_url, env_user, env_password = credentials_from_env()
        url, user, password = url or env_url, user or env_user, password or env_password
    out = Path(out)
    survey_id = int(survey_id)
    previous = None if full else latest_snapshot(out, survey_id)
    prev_rows: tuple[list[str], dict[int, list[str | None]]] = ([], {})
    if previous is not None:
        verify_snapshot(previous)
        prev_rows = read_snapshot_rows(previous)

    client = open_client(url, user, password, timeout=timeout, retries=retries, backoff=backoff)
    bar = _progress(progress, 6)
    bar.update(1)
    kw: dict[str, Any] = {"retries": retries, "backoff": backoff}
    try:
        got = _download(client, survey_id, prev_rows, previous, full=full, page_size=page_size, bar=bar, kw=kw)
    except (LimeSurveyFetchError, DataValidationError):
        raise
    except Exception as exc:
        raise LimeSurveyFetchError("Fetching from LimeSurvey failed", found=_scrub(f"{type(exc).__name__}: {exc}")) from None
    finally:
        try:
            client.close()
        except Exception as exc:
            _log.warning("could not release the LimeSurvey session key: %s", type(exc).__name__)
        bar.close()

    from_id = got.from_id
    m = merge_responses(prev_rows, got.header, got.rows, f"survey {survey_id} export", requested_from=from_id)
    if m.not_returned:
        _log.warning("%d responses of the previous snapshot were not in the export (deleted on the server?); their previous copy is kept",
                     len(m.not_returned))
    from survey.lsformat import php_json_dumps, write_csv_export

    participants = got.participants
    files = {"responses.csv": write_csv_export(m.header, m.rows),
             "participants.json": php_json_dumps(participants or []).encode("utf-8"),
             "fieldmap.json": json.dumps(got.fieldmap, ensure_ascii=False, indent=1).encode("utf-8")}
    if previous is not None:
        files["export.csv"] = got.payload or b""
    manifest = _manifest(survey_id, m, len(participants or []), previous, now, {
        "server_version": got.version, "source": "remotecontrol", "requested_from_id": from_id, "request_reason": got.reason,
        "alloweditaftercompletion": "Y" if got.edits else "N", "delta_file": "export.csv" if previous is not None else None,
        "new_responses": len(m.new),
    })
    snap = write_snapshot(out, survey_id, files, manifest, now=now, check=_check_before_writing)
    _log.info("wrote snapshot %s (%d new, %d changed responses)", snap, len(m.new), len(m.changed))
    return _result(snap, survey_id, m, len(participants or []), previous, got.version)


@dataclass(frozen=True)
class _Download:
    """What a fetch received from the server."""

    version: str
    #: the survey allows edits after completion
    edits: bool
    #: the first response id asked for (``None``: all) and why
    from_id: int | None
    reason: str
    fieldmap: Any
    #: the export as received, and its header and rows
    payload: bytes
    header: list[str]
    rows: list[list[str | None]]
    participants: list[dict[str, Any]] | None


def _download(client: Any, survey_id: int, prev_rows: tuple[list[str], dict[int, list[str | None]]], previous: Path | None, *,
              full: bool, page_size: int, bar: Any, kw: dict[str, Any]) -> _Download:
    """Ask the server for its version, the survey's properties and fieldmap, the responses from the start point, the participants."""
    version = str(rpc_call("get_site_settings", client.get_server_version, **kw))
    props = cast("dict[str, Any]", rpc_call("get_survey_properties", lambda: client.get_survey_properties(
        survey_id, ["active", "anonymized", "datestamp", "alloweditaftercompletion"]), **kw))
    if props.get("active") != "Y":
        raise LimeSurveyFetchError(
            "The survey is not active", param="survey_id", found=f"survey {survey_id} has active={props.get('active')!r}",
            hint="activate the survey (popeval deploy does) before fetching; an inactive survey has no responses table",
        )
    edits = props.get("alloweditaftercompletion") == "Y"
    from_id, reason = _start_point(prev_rows, previous, edits=edits, full=full)
    _log.info("fetching survey %s (from response id %s: %s)", survey_id, from_id or 1, reason)
    bar.update(1)
    fieldmap = rpc_call("get_fieldmap", lambda: client.get_fieldmap(survey_id), **kw)
    bar.update(1)
    payload, header, rows = cast("tuple[bytes, list[str], list[list[str | None]]]",
                                 rpc_call("export_responses", lambda: _export_responses(client, survey_id, from_id), **kw))
    bar.update(1)
    participants = list_all_participants(client, survey_id, page_size=page_size, **kw)
    bar.update(1)
    return _Download(version=version, edits=edits, from_id=from_id, reason=reason, fieldmap=fieldmap, payload=payload,
                     header=header, rows=rows, participants=participants)


def _start_point(prev_rows: tuple[list[str], dict[int, list[str | None]]], previous: Path | None, *, edits: bool,
                 full: bool) -> tuple[int | None, str]:
    """The first response id to export (``None``: every response) and the reason, for the manifest."""
    incomplete = _incomplete_ids(prev_rows)
    if not prev_rows[1]:
        from_id, reason = None, "first fetch" if previous is None else "the previous snapshot has no responses"
    elif edits:
        from_id, reason = None, "the survey allows edits after completion, so any response may have changed"
    elif incomplete:
        from_id, reason = incomplete[0], f"from the first response that was incomplete ({len(incomplete)} were)"
    else:
        from_id, reason = max(prev_rows[1]) + 1, "above the previous highest id (no response was incomplete)"
    if full:
        reason = "full fetch requested"
    return from_id, reason


def _export_responses(client: Any, survey_id: int, from_id: int | None) -> tuple[bytes, list[str], list[list[str | None]]]:
    """One ``export_responses`` call: the CSV payload, its header and rows (a damaged reply is a transient error)."""
    from citric import exceptions as cx

    from survey.lsformat import parse_responses_bytes

    try:
        payload = client.export_responses(survey_id, file_format="csv", completion_status="all", heading_type="code",
                                          response_type="short", from_response_id=from_id)
    except cx.LimeSurveyStatusError as exc:
        if str(exc) == _NO_DATA:
            return b"", [], []
        raise
    except binascii.Error as exc:
        raise _TransientError(f"the export was not valid base64 ({exc})") from exc
    if not payload:
        raise _TransientError("the export was empty (0 bytes; LimeSurvey sends at least a line break)")
    if payload != b"\r\n" and not (payload.startswith(b"\xef\xbb\xbf") and payload.endswith(b"\r\n")):
        # citric decodes base64 leniently: a damaged reply shows as bytes that are no LimeSurvey CSV
        raise _TransientError("the export was not valid base64 or was damaged (no LimeSurvey CSV: BOM and header "
                              "at the start, a line break at the end)")
    try:
        header, body = parse_responses_bytes(payload, "export_responses")
    except DataValidationError as exc:
        raise _TransientError(f"the export could not be parsed ({exc.title})") from exc
    return payload, header, body


def _manifest(survey_id: int, m: Merge, n_participants: int, previous: Path | None, now: datetime | None,
              extra: dict[str, Any]) -> dict[str, Any]:
    ids = [int(str(r["id"])) for r in m.rows]
    return {
        "survey_id": survey_id,
        "fetched_at_utc": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "export": dict(_EXPORT),
        "from_id": min(ids) if ids else None,
        "to_id": max(ids) if ids else None,
        "counts": {
            "responses": len(m.rows),
            "complete": sum(1 for r in m.rows if r.get("submitdate") not in (None, "")),
            "participants": n_participants,
        },
        "changes": {"new": list(m.new), "changed": list(m.changed), "completed": list(m.completed), "unchanged": m.unchanged,
                    "not_returned": list(m.not_returned)},
        "previous": previous.name if previous else None,
        "previous_manifest_sha256": sha256_file(previous / "manifest.json") if previous else None,
        **extra,
    }


def _result(snap: Path, survey_id: int, m: Merge, n_participants: int, previous: Path | None, version: str) -> FetchResult:
    complete = sum(1 for r in m.rows if r.get("submitdate") not in (None, ""))
    return FetchResult(snap, survey_id, len(m.new), len(m.rows), complete, n_participants, previous, version,
                       changed_responses=len(m.changed), completed_since=len(m.completed))


def ingest_file(
    path: str | Path,
    survey_id: int,
    out: str | Path = "data_raw/survey",
    *,
    participants: str | Path | None = None,
    now: datetime | None = None,
) -> FetchResult:
    """Ingest a hand-downloaded LimeSurvey export into a new snapshot.

    Accepts the CSV export as LimeSurvey writes it (UTF-8 BOM, ``;`` or ``,``, every value quoted, CRLF)
    and the JSON export in its old (``{"responses": [{"<id>": {...}}]}``) and new flat shapes; code
    headings (or SGQA names resolvable through the previous snapshot's fieldmap).  Responses are merged
    with the previous snapshot by id.  The participants table is taken from ``participants`` (a
    ``list_participants`` JSON file) or else carried over from the previous snapshot.  The original
    file is kept in the snapshot as ``source_<name>``.

    Raises
    ------
    DataValidationError
        The file is empty (0 bytes), repeats a response id, has no id column, or the participants
        file is not the ``list_participants`` JSON (nothing is written then).
    """
    from survey.lsformat import parse_responses_bytes, php_json_dumps, write_csv_export
    from survey.parse import load_participant_list, resolve_header

    path = Path(path)
    out = Path(out)
    survey_id = int(survey_id)
    if not path.is_file():
        raise ConfigError("The export file does not exist", file=path, hint="give the path of the downloaded CSV or JSON export")
    data = path.read_bytes()
    if not data:
        raise DataValidationError(
            "The export file is empty (0 bytes)", file=path, expected="a LimeSurvey CSV or JSON export",
            found="0 bytes", hint="the download did not finish; download the export from LimeSurvey again",
        )
    header, body = parse_responses_bytes(data, path)
    previous = latest_snapshot(out, survey_id)
    fieldmap = None
    if previous is not None:
        verify_snapshot(previous)
        if (previous / "fieldmap.json").is_file():
            fieldmap = json.loads((previous / "fieldmap.json").read_text(encoding="utf-8"))
    header = resolve_header(header, fieldmap, path)
    prev_rows = read_snapshot_rows(previous) if previous is not None else ([], {})
    m = merge_responses(prev_rows, header, body, path)
    plist: list[dict[str, Any]] | None
    if participants is not None:
        plist = load_participant_list(Path(participants))
    elif previous is not None and (previous / "participants.json").is_file():
        plist = load_participant_list(previous / "participants.json")
    else:
        plist = None
    files = {"responses.csv": write_csv_export(m.header, m.rows), f"source_{path.name}": data}
    if plist is not None:
        files["participants.json"] = php_json_dumps(plist).encode("utf-8")
    if fieldmap is not None:
        files["fieldmap.json"] = json.dumps(fieldmap, ensure_ascii=False, indent=1).encode("utf-8")
    manifest = _manifest(survey_id, m, len(plist or []), previous, now,
                         {"server_version": "file", "source": f"file {path.name}", "new_responses": len(m.new)})
    snap = write_snapshot(out, survey_id, files, manifest, now=now, check=_check_before_writing)
    return _result(snap, survey_id, m, len(plist or []), previous, "file")
