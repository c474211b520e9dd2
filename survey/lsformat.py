"""Write files exactly as LimeSurvey 6 writes its response exports.

The byte-level facts (recorded from a real LimeSurvey 6.14 server) are:

* CSV: UTF-8 BOM, ``;`` separators (configurable), CRLF after every record, every non-NULL value
  double-quoted (numbers too), NULL as an empty unquoted field, ``"`` doubled, line breaks inside a
  value normalised to a bare LF, one extra CRLF at the end; an export with no rows is just ``\\r\\n``.
* JSON: ``{"responses": [`` then compact records joined by ``,`` then ``]}``; ``id`` and ``lastpage``
  are integers, every answer a string, ``null`` kept apart from ``""``; non-ASCII as ``\\uXXXX`` and
  ``/`` as ``\\/`` (PHP ``json_encode``).

Both the demo study and the stand-in RC2 server use these writers, so the parser always sees what a
real server sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

__all__ = ["php_json_dumps", "write_csv_export", "write_json_export"]

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
