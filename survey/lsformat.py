"""LimeSurvey 6's response exports: read them, and write files exactly as LimeSurvey writes them.

The byte-level facts (recorded from a real LimeSurvey 6.14 server) are:

* CSV: UTF-8 BOM, ``;`` separators (configurable), CRLF after every record, every non-NULL value
  double-quoted (numbers too), NULL as an empty unquoted field, ``"`` doubled, line breaks inside a
  value normalised to a bare LF, one extra CRLF at the end; an export with no rows is just ``\\r\\n``.
* JSON: ``{"responses": [`` then compact records joined by ``,`` then ``]}``; ``id`` and ``lastpage``
  are integers, every answer a string, ``null`` kept apart from ``""``; non-ASCII as ``\\uXXXX`` and
  ``/`` as ``\\/`` (PHP ``json_encode``).

Both the demo study and the stand-in RC2 server use these writers, so the reader
(:func:`parse_responses_bytes`) always sees what a real server sends.  :func:`code_heading_map`
names the columns of a ``get_fieldmap`` result by their code headings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from survey.errors import DataValidationError

__all__ = [
    "code_heading_map",
    "parse_responses_bytes",
    "php_json_dumps",
    "write_csv_export",
    "write_json_export",
]

_LINEBREAK = re.compile(r"\r\n|\r|\n|\u2028|\u2029|\x0b|\x0c|\x85")
_INT_FIELDS = ("id", "lastpage")


def _csv_value(v: object) -> str:
    if v is None:
        return ""
    s = _LINEBREAK.sub("\n", str(v))
    return '"' + s.replace('"', '""') + '"'


def write_csv_export(columns: Sequence[str], rows: Sequence[Mapping[str, object]], sep: str = ";") -> bytes:
    """A LimeSurvey CSV export (code headings) of ``rows``; ``None`` is NULL."""
    if not rows:
        return b"\r\n"
    lines = [sep.join(_csv_value(c) for c in columns)]
    for r in rows:
        lines.append(sep.join(_csv_value(r.get(c)) for c in columns))
    return ("\ufeff" + "\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def php_json_dumps(obj: object) -> str:
    """``json_encode`` as PHP does it: compact, ASCII-only, ``/`` escaped."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def write_json_export(columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> bytes:
    """A LimeSurvey 6 JSON export (flat shape) of ``rows``."""
    recs = []
    for r in rows:
        rec: dict[str, object] = {}
        for c in columns:
            v = r.get(c)
            if c in _INT_FIELDS and v is not None:
                rec[c] = int(v)  # type: ignore[call-overload]
            else:
                rec[c] = None if v is None else str(v)
        recs.append(php_json_dumps(rec))
    return ('{"responses": [' + ",".join(recs) + "]}").encode("utf-8")


# ----------------------------------------------------------------------------- raw responses


def _parse_limesurvey_csv(text: str, source: str | Path) -> tuple[list[str], list[list[str | None]]]:
    """Parse LimeSurvey CSV text; an unquoted empty field is NULL (``None``), ``""`` an empty string."""
    text = text.lstrip("\ufeff")
    if text.strip("\r\n") == "":
        return [], []
    sep = ";"
    first_line = text.split("\n", 1)[0]
    if first_line.count(";") == 0 and first_line.count(",") > 0:
        sep = ","
    pattern = re.compile(r'"((?:[^"]|"")*)"|([^' + re.escape(sep) + r'"\r\n]*)')
    records: list[list[str | None]] = []
    pos, n = 0, len(text)
    row: list[str | None] = []
    while pos < n:
        m = pattern.match(text, pos)
        if m is None:  # pragma: no cover - the pattern always matches (possibly empty)
            break
        if m.group(1) is not None:
            row.append(m.group(1).replace('""', '"'))
        else:
            val = m.group(2)
            row.append(None if val == "" else val)
        pos = m.end()
        if pos >= n:
            records.append(row)
            break
        ch = text[pos]
        if ch == sep:
            pos += 1
            if pos >= n:
                row.append(None)
                records.append(row)
            continue
        if ch in "\r\n":
            pos += 2 if text.startswith("\r\n", pos) else 1
            records.append(row)
            row = []
            continue
        raise DataValidationError(
            "Malformed CSV export",
            file=source,
            row=len(records),
            expected=f"quoted fields separated by {sep!r}",
            found=repr(re.sub(r"\d[\d.\-\s/]{5,}\d", "<digits>", text[max(0, pos - 20) : pos + 20])) + " (numbers not shown)",
            hint="download the export again as CSV from LimeSurvey (or use the JSON export)",
        )
    # drop empty trailing lines (LimeSurvey ends the file with one extra CRLF)
    while records and records[-1] in ([None], []):
        records.pop()
    if not records:
        return [], []
    header = [str(h) if h is not None else "" for h in records[0]]
    body = records[1:]
    for i, r in enumerate(body, start=1):
        if len(r) != len(header):
            raise DataValidationError(
                "A CSV record has the wrong number of fields",
                file=source,
                row=i,
                expected=f"{len(header)} fields (as in the header)",
                found=f"{len(r)} fields",
                hint="the file may be truncated or edited; download the export again",
            )
    return header, body


def _parse_limesurvey_json(text: str, source: str | Path) -> tuple[list[str], list[list[str | None]]]:
    """Parse a LimeSurvey JSON export, new flat shape or old ``{"<id>": {...}}`` shape."""
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise DataValidationError(
            "The JSON export is not valid JSON", file=source, found=str(exc), hint="the file may be truncated; download it again"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("responses"), list):
        raise DataValidationError(
            "The JSON export has an unexpected shape",
            file=source,
            expected='{"responses": [...]}',
            found=type(data).__name__ + (f" with keys {sorted(data)[:5]}" if isinstance(data, dict) else ""),
        )
    recs: list[dict[str, Any]] = []
    for item in data["responses"]:
        if not isinstance(item, dict):
            raise DataValidationError("A JSON response is not an object", file=source, found=repr(item)[:80])
        if len(item) == 1 and isinstance(next(iter(item.values())), dict):
            # old shape: {"<id>": {...}}
            rid, rec = next(iter(item.items()))
            rec = dict(rec)
            rec.setdefault("id", rid)
            recs.append(rec)
        else:
            recs.append(item)
    header: list[str] = []
    for r in recs:
        for k in r:
            if k not in header:
                header.append(k)
    body = [[None if r.get(c) is None else str(r[c]) for c in header] for r in recs]
    return header, body


def parse_responses_bytes(data: bytes, source: str | Path = "<bytes>") -> tuple[list[str], list[list[str | None]]]:
    """Header and records of a LimeSurvey export (CSV or JSON, detected from the content)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            "The export is not UTF-8", file=source, found=str(exc), hint="LimeSurvey writes UTF-8; do not re-save the file in Excel"
        ) from exc
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        return _parse_limesurvey_json(text, source)
    return _parse_limesurvey_csv(text, source)


def code_heading_map(fieldmap: Mapping[str, Any]) -> dict[str, str]:
    """SGQA column name -> code heading, from a ``get_fieldmap`` result (or a plain name mapping)."""
    out: dict[str, str] = {}
    for key, entry in fieldmap.items():
        if isinstance(entry, str):
            out[key] = entry
            continue
        title = str(entry.get("title") or "")
        aid = str(entry.get("aid") or "")
        if not title:
            out[key] = str(entry.get("fieldname", key))
        else:
            out[key] = f"{title}[{aid}]" if aid else title
    return out
