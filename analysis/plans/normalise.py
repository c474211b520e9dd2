"""Accent stripping shared by the concordance, the text classifier and the synthetic POPs."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

__all__ = ["strip_accents"]

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
#: up to this many distinct characters to replace, one ``str.replace`` each; more, one ``str.translate``
_FEW = 16


@lru_cache(maxsize=1 << 12)
def _stripped_char(c: str) -> str:
    return "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))


def strip_accents(s: str) -> str:
    """``s`` in Unicode NFKD form without its combining marks (``"café"`` -> ``"cafe"``).

    The same string as ``"".join(c for c in unicodedata.normalize("NFKD", s) if not
    unicodedata.combining(c))`` (and as scikit-learn's ``strip_accents="unicode"``), without a Python
    step per character.  NFKD decomposes each character on its own and only reorders combining marks,
    which are all dropped; so each distinct non-ASCII character of ``s`` is replaced by its own
    stripped decomposition, and ASCII text is returned as it is.
    """
    if s.isascii():
        return s
    changed = {c: m for c in set(_NON_ASCII.findall(s)) if (m := _stripped_char(c)) != c}
    if len(changed) > _FEW:  # one pass over the text instead of one per character
        return s.translate({ord(c): m for c, m in changed.items()})
    for c, m in changed.items():
        s = s.replace(c, m)
    return s
