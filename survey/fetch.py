"""Fetch the survey from LimeSurvey (RemoteControl 2, through citric) into immutable snapshots.

A snapshot is a folder ``<out>/<survey id>/<UTC timestamp>/`` holding

* ``responses.csv``: the LimeSurvey CSV export (code headings, short answers, all completion
  states), byte for byte as LimeSurvey writes it; for an incremental fetch, the previous snapshot's
  responses merged with the new ones (each response id once, the newer copy wins);
* ``participants.json``: the ``list_participants(..., ['attribute_1'])`` result (all pages);
* ``fieldmap.json``: the ``get_fieldmap`` result (resolves internal SGQA column names);
* ``manifest.json``: survey id, server version, UTC time, export settings, id range, counts, the
  SHA-256 of every other file, and the previous snapshot.

Guarantees: credentials come only from the environment (``LIMESURVEY_URL``, ``LIMESURVEY_USER``,
``LIMESURVEY_PASSWORD``) and are never logged or shown; a snapshot is written into a hidden
temporary folder beside its final place and renamed when complete, so a failed fetch leaves nothing;
the session key is always released; transient faults (connection errors, time-outs, truncated or
undecodable replies) are retried with exponential backoff, a bounded number of times.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from survey.errors import ConfigError, DataValidationError, LimeSurveyFetchError
from survey.hashing import sha256_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENV_PASSWORD",
    "ENV_URL",
    "ENV_USER",
    "FetchResult",
    "credentials_from_env",
    "fetch",
    "ingest_file",
    "latest_snapshot",
    "open_client",
]

ENV_URL = "LIMESURVEY_URL"
ENV_USER = "LIMESURVEY_USER"
ENV_PASSWORD = "LIMESURVEY_PASSWORD"

_log = logging.getLogger("popeval.survey.fetch")
_T = TypeVar("_T")
_EXPORT = {"document_type": "csv", "heading_type": "code", "response_type": "short", "completion_status": "all"}
_NO_DATA = "No Data, could not get max id."
_NO_PARTICIPANTS = "No survey participants found."


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
        Responses received in this fetch (above the previous snapshot's highest id).
    responses, complete, participants
        Counts in the new snapshot.
    previous
        The snapshot this one extends, if any.
    server_version
        LimeSurvey's ``versionnumber`` (or ``file`` for an ingested export).
    """

    snapshot: Path
    survey_id: int
    new_responses: int
    responses: int
    complete: int
    participants: int
    previous: Path | None
    server_version: str

    def summary(self) -> str:
        """A short plain-text account."""
        prev = self.previous.name if self.previous else "none"
        return (
            f"Survey {self.survey_id} snapshot {self.snapshot.name} (LimeSurvey {self.server_version})\n"
            f"  new responses      {self.new_responses:>8,}\n"
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
              "server_version": self.server_version}]
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
                found=f"{err} (after {retries + 1} attempts)",
                hint="check the network and the server; the fetch can simply be run again (nothing was written)",
            ) from err
        delay = backoff * (2 ** (attempt - 1))
        _log.warning("%s: %s; retrying in %.2f s (attempt %d of %d)", what, err, delay, attempt + 1, retries + 1)
        time.sleep(delay)


def open_client(url: str, user: str, password: str, *, timeout: float = 60.0, retries: int = 3, backoff: float = 1.0) -> Any:
    """A logged-in :class:`citric.Client` (the session key is released by ``client.close()``).

    Raises
    ------
    LimeSurveyFetchError
        Wrong credentials, the RemoteControl interface disabled, or the server unreachable.
    """
    from citric import Client
    from citric import exceptions as cx

    def login() -> Any:
        return Client(url, user, password, requests_session=_requests_session(timeout))

    try:
        return _retry("log in (get_session_key)", login, retries, backoff)
    except cx.LimeSurveyStatusError as exc:
        raise LimeSurveyFetchError(
            "LimeSurvey rejected the credentials",
            param=f"{ENV_USER}/{ENV_PASSWORD}",
            found=str(exc),
            hint=f"check {ENV_USER} and {ENV_PASSWORD}; the user needs RemoteControl access to the survey",
        ) from None
    except cx.RPCInterfaceNotEnabledError:
        raise LimeSurveyFetchError(
            "The LimeSurvey RemoteControl interface answered with an empty reply",
            param=ENV_URL,
            hint="enable JSON-RPC under Global settings > Interfaces, and check that the URL ends in /index.php/admin/remotecontrol",
        ) from None
    except LimeSurveyFetchError:
        raise
    except Exception as exc:
        raise LimeSurveyFetchError(
            "Could not reach LimeSurvey", param=ENV_URL, found=type(exc).__name__, hint="check the URL and the network"
        ) from None


def _status(result: Any) -> str | None:
    if isinstance(result, dict) and isinstance(result.get("status"), str) and result["status"] != "OK":
        return str(result["status"])
    return None


def _rpc(session: Any, method: str, *params: Any, retries: int, backoff: float, allow: tuple[str, ...] = ()) -> Any:
    """Call ``method`` through citric's session; a status other than those in ``allow`` is an error."""

    def call() -> Any:
        resp = session.call(method, *params)
        if resp.get("error") is not None:
            raise LimeSurveyFetchError(f"LimeSurvey reported an error in {method}", found=str(resp["error"]))
        return resp["result"]

    result = _retry(method, call, retries, backoff)
    st = _status(result)
    if st is not None and st not in allow:
        hint = {
            "Invalid session key": "the session expired; run the fetch again",
            "No permission": "the survey id does not exist or the user may not export it",
        }.get(st, "see the LimeSurvey RemoteControl documentation for this status")
        raise LimeSurveyFetchError(f"LimeSurvey refused {method}", found=st, hint=hint)
    return result


# ----------------------------------------------------------------------------- snapshots


def latest_snapshot(out: str | Path, survey_id: int) -> Path | None:
    """The newest complete snapshot (one with a manifest) of ``survey_id`` under ``out``."""
    base = Path(out) / str(survey_id)
    if not base.is_dir():
        return None
    snaps = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file())
    return snaps[-1] if snaps else None


def _read_snapshot_rows(snap: Path) -> tuple[list[str], dict[int, list[str | None]]]:
    from survey.parse import parse_responses_bytes

    header, body = parse_responses_bytes((snap / "responses.csv").read_bytes(), snap / "responses.csv")
    if not header:
        return [], {}
    i = header.index("id")
    return header, {int(str(r[i])): r for r in body}


def _merge(prev: tuple[list[str], dict[int, list[str | None]]], new_header: list[str], new_rows: list[list[str | None]],
           source: str | Path) -> tuple[list[str], list[dict[str, object]]]:
    old_header, old = prev
    header = new_header or old_header
    if old_header and new_header and old_header != new_header:
        raise DataValidationError(
            "The survey's columns changed since the previous snapshot",
            file=source,
            expected="the columns of the previous snapshot: " + ", ".join(old_header[:12]) + (" ..." if len(old_header) > 12 else ""),
            found=", ".join(c for c in new_header if c not in old_header) or "a different column order",
            hint="the questionnaire was edited on the server; take a full fetch into a new output folder (--full)",
        )
    merged = dict(old)
    if new_header:
        i = new_header.index("id")
        for r in new_rows:
            merged[int(str(r[i]))] = r
    rows: list[dict[str, object]] = [dict(zip(header, merged[k], strict=True)) for k in sorted(merged)]
    return header, rows


def _write_snapshot(
    out: Path,
    survey_id: int,
    header: list[str],
    rows: list[dict[str, object]],
    participants: list[dict[str, Any]] | None,
    extra_files: dict[str, bytes],
    manifest_extra: dict[str, Any],
    previous: Path | None,
    now: datetime | None,
) -> Path:
    from survey.lsformat import php_json_dumps, write_csv_export

    base = out / str(survey_id)
    base.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    final = base / stamp
    k = 1
    while final.exists():
        k += 1
        final = base / f"{stamp}-{k}"
    tmp = base / f".{final.name}.partial-{os.getpid()}"
    try:
        tmp.mkdir()
        (tmp / "responses.csv").write_bytes(write_csv_export(header, rows))
        if participants is not None:
            (tmp / "participants.json").write_bytes(php_json_dumps(participants).encode("utf-8"))
        for name, data in extra_files.items():
            (tmp / name).write_bytes(data)
        ids = [int(str(r["id"])) for r in rows]
        manifest = {
            "survey_id": survey_id,
            "fetched_at_utc": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "export": dict(_EXPORT),
            "from_id": min(ids) if ids else None,
            "to_id": max(ids) if ids else None,
            "counts": {
                "responses": len(rows),
                "complete": sum(1 for r in rows if r.get("submitdate") not in (None, "")),
                "participants": len(participants or []),
            },
            "files": {p.name: sha256_file(p) for p in sorted(tmp.iterdir())},
            "previous": previous.name if previous else None,
            **manifest_extra,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for p in tmp.iterdir():
            p.chmod(0o444)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ----------------------------------------------------------------------------- fetch


def _progress(enabled: bool, total: int) -> Any:
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc="LimeSurvey fetch", unit="step", file=sys.stderr, disable=not enabled, leave=False)


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
    """
    if url is None or user is None or password is None:
        env_url, env_user, env_password = credentials_from_env()
        url, user, password = url or env_url, user or env_user, password or env_password
    out = Path(out)
    survey_id = int(survey_id)
    previous = None if full else latest_snapshot(out, survey_id)
    prev_rows: tuple[list[str], dict[int, list[str | None]]] = ([], {})
    if previous is not None:
        prev_rows = _read_snapshot_rows(previous)
    from_id = (max(prev_rows[1]) + 1) if prev_rows[1] else None
    _log.info("fetching survey %s (from response id %s)", survey_id, from_id or "1")

    bar = _progress(progress, 6)
    client = open_client(url, user, password, timeout=timeout, retries=retries, backoff=backoff)
    bar.update(1)
    session = client.session
    kw: dict[str, Any] = {"retries": retries, "backoff": backoff}
    try:
        version = str(_rpc(session, "get_site_settings", "versionnumber", **kw))
        props = _rpc(session, "get_survey_properties", survey_id, ["active", "anonymized", "datestamp"], **kw)
        if props.get("active") != "Y":
            raise LimeSurveyFetchError(
                "The survey is not active", param="survey_id", found=f"survey {survey_id} has active={props.get('active')!r}",
                hint="activate the survey (popeval deploy does) before fetching; an inactive survey has no responses table",
            )
        bar.update(1)
        fieldmap = _rpc(session, "get_fieldmap", survey_id, **kw)
        bar.update(1)

        def export() -> tuple[list[str], list[list[str | None]]]:
            from survey.parse import parse_responses_bytes

            result = _rpc(session, "export_responses", survey_id, "csv", None, "all", "code", "short", from_id, None, allow=(_NO_DATA,), **kw)
            if _status(result) == _NO_DATA:
                return [], []
            if not isinstance(result, str):
                raise _TransientError(f"unexpected export result of type {type(result).__name__}")
            try:
                payload = base64.b64decode(result, validate=True)
            except binascii.Error as exc:
                raise _TransientError(f"the export was not valid base64 ({exc})") from exc
            try:
                return parse_responses_bytes(payload, "export_responses")
            except DataValidationError as exc:
                raise _TransientError(f"the export could not be parsed ({exc.title})") from exc

        new_header, new_rows = _retry("export_responses", export, retries, backoff)
        bar.update(1)

        participants: list[dict[str, Any]] = []
        start = 0
        while True:
            page = _rpc(session, "list_participants", survey_id, start, page_size, False, ["attribute_1"], allow=(_NO_PARTICIPANTS,), **kw)
            if _status(page) == _NO_PARTICIPANTS or not page:
                break
            participants.extend(page)
            if len(page) < page_size:
                break
            start += page_size
        bar.update(1)
    except LimeSurveyFetchError:
        raise
    except Exception as exc:
        raise LimeSurveyFetchError("Fetching from LimeSurvey failed", found=f"{type(exc).__name__}: {exc}") from exc
    finally:
        try:
            client.close()
        except Exception as exc:
            _log.warning("could not release the LimeSurvey session key: %s", type(exc).__name__)
        bar.close()

    header, rows = _merge(prev_rows, new_header, new_rows, f"survey {survey_id}")
    snap = _write_snapshot(
        out, survey_id, header, rows, participants,
        {"fieldmap.json": json.dumps(fieldmap, ensure_ascii=False, indent=1).encode("utf-8")},
        {"server_version": version, "source": "remotecontrol", "requested_from_id": from_id, "new_responses": len(new_rows)},
        previous, now,
    )
    _log.info("wrote snapshot %s (%d new responses)", snap, len(new_rows))
    m = json.loads((snap / "manifest.json").read_text(encoding="utf-8"))
    return FetchResult(snap, survey_id, len(new_rows), m["counts"]["responses"], m["counts"]["complete"], len(participants), previous, version)


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
    """
    from survey.parse import FIXED_COLUMNS, _resolve_header, parse_responses_bytes

    path = Path(path)
    out = Path(out)
    survey_id = int(survey_id)
    if not path.is_file():
        raise ConfigError("The export file does not exist", file=path, hint="give the path of the downloaded CSV or JSON export")
    data = path.read_bytes()
    header, body = parse_responses_bytes(data, path)
    previous = latest_snapshot(out, survey_id)
    fieldmap = None
    if previous is not None and (previous / "fieldmap.json").is_file():
        fieldmap = json.loads((previous / "fieldmap.json").read_text(encoding="utf-8"))
    header = _resolve_header(header, fieldmap, path)
    if header and "id" not in header:
        raise DataValidationError(
            "The export has no response id column", file=path, column="id",
            expected="the columns " + ", ".join(FIXED_COLUMNS), hint="export with code headings and all columns",
        )
    prev_rows = _read_snapshot_rows(previous) if previous is not None else ([], {})
    merged_header, rows = _merge(prev_rows, header, body, path)
    if participants is not None:
        plist = json.loads(Path(participants).read_text(encoding="utf-8-sig"))
    elif previous is not None and (previous / "participants.json").is_file():
        plist = json.loads((previous / "participants.json").read_text(encoding="utf-8"))
    else:
        plist = None
    extra = {f"source_{path.name}": data}
    if fieldmap is not None:
        extra["fieldmap.json"] = json.dumps(fieldmap, ensure_ascii=False, indent=1).encode("utf-8")
    snap = _write_snapshot(
        out, survey_id, merged_header, rows, plist, extra,
        {"server_version": "file", "source": f"file {path.name}", "new_responses": len(body)}, previous, now,
    )
    m = json.loads((snap / "manifest.json").read_text(encoding="utf-8"))
    return FetchResult(snap, survey_id, len(body), m["counts"]["responses"], m["counts"]["complete"], len(plist or []), previous, "file")
