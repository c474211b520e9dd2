"""Number, percentage, p-value and date formatting for the reports, in Dutch (Belgian) or English.

Belgian conventions in Dutch: a decimal comma, a point between thousands, a (non-breaking) space
before the percent sign and dates such as ``23 november 2026``.  English uses a decimal point, a
comma between thousands, ``12.3%`` and ``23 November 2026``.

Every function takes ``lang`` (``'nl'`` or ``'en'``) and returns :data:`MISSING` for a missing
value (``None`` or NaN), so table code never has to test for it.  The locale's symbols, digit
grouping and month names come from the CLDR through Babel (``nl_BE``, ``en_GB``); the house style
adds a true minus sign (U+2212), no sign on a number that rounds to zero, and the Dutch space
before the percent sign.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from survey.errors import ConfigError

__all__ = [
    "LANGS",
    "LOCALES",
    "MISSING",
    "NBSP",
    "SUPPRESSED",
    "check_lang",
    "fmt_ci",
    "fmt_date",
    "fmt_datetime",
    "fmt_int",
    "fmt_num",
    "fmt_p",
    "fmt_pct",
    "fmt_signed",
    "is_missing",
]

#: The languages the report is written in.
LANGS = ("nl", "en")
#: A non-breaking space (between a number and its percent sign in Dutch).
NBSP = "\u00a0"
#: What a missing value looks like in a table.
MISSING = "–"
#: What a cell suppressed by disclosure control looks like (Eurostat's flag for confidential cells).
SUPPRESSED = "x"

#: The Babel (CLDR) locale of each report language.
LOCALES = {"nl": "nl_BE", "en": "en_GB"}


def check_lang(lang: str) -> str:
    """Return ``lang`` if it is a report language.

    Raises
    ------
    ConfigError
        For any other value.
    """
    if lang not in LANGS:
        raise ConfigError("Unknown report language", param="lang", expected=" or ".join(LANGS), found=repr(lang), hint="use --lang nl or --lang en")
    return lang


def is_missing(x: Any) -> bool:
    """Whether ``x`` is None, NaN or pandas' NA."""
    if x is None:
        return True
    try:
        return bool(x != x) or (isinstance(x, float) and math.isnan(x))  # NaN and pd.NA
    except TypeError:  # pd.NA in a boolean context
        return True


def fmt_num(x: Any, digits: int = 1, lang: str = "nl") -> str:
    """A number with ``digits`` decimals and grouped thousands.

    >>> fmt_num(12345.678, 2)
    '12.345,68'
    >>> fmt_num(12345.678, 2, lang="en")
    '12,345.68'
    >>> fmt_num(-0.04, 1)
    '0,0'
    """
    check_lang(lang)
    if is_missing(x):
        return MISSING
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    from babel.numbers import format_decimal

    pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
    body = format_decimal(abs(x), format=pattern, locale=LOCALES[lang], decimal_quantization=True)
    negative = x < 0 and any(ch.isdigit() and ch != "0" for ch in body)
    return ("−" if negative else "") + body


def fmt_int(x: Any, lang: str = "nl") -> str:
    """A whole number with grouped thousands: ``12.345`` (nl) or ``12,345`` (en)."""
    if is_missing(x):
        return MISSING
    return fmt_num(round(float(x)), 0, lang)


def fmt_signed(x: Any, digits: int = 2, lang: str = "nl") -> str:
    """A number with an explicit sign: ``+0,25``, ``−0,10``; zero has no sign."""
    s = fmt_num(x, digits, lang)
    if s == MISSING or s.startswith("−") or not any(ch.isdigit() and ch != "0" for ch in s):
        return s
    return "+" + s


def fmt_pct(x: Any, digits: int = 1, lang: str = "nl", *, proportion: bool = False) -> str:
    """A percentage: ``12,3 %`` (nl, with a non-breaking space) or ``12.3%`` (en).

    Parameters
    ----------
    x
        The percentage (``12.3``), or a proportion (``0.123``) when ``proportion`` is true.
    digits
        Decimals.
    lang
        ``'nl'`` or ``'en'``.
    proportion
        Multiply by 100 first.
    """
    if is_missing(x):
        return MISSING
    value = float(x) * (100.0 if proportion else 1.0)
    s = fmt_num(value, digits, lang)
    return f"{s}{NBSP}%" if lang == "nl" else f"{s}%"


def fmt_p(p: Any, lang: str = "nl") -> str:
    """A p-value: three decimals, or ``< 0,001`` / ``< 0.001`` below that."""
    if is_missing(p):
        return MISSING
    p = float(p)
    if p < 0.001:
        return f"<{NBSP}{fmt_num(0.001, 3, lang)}"
    return fmt_num(p, 3, lang)


def fmt_ci(lo: Any, hi: Any, digits: int = 2, lang: str = "nl") -> str:
    """A confidence interval: ``[0,12; 0,34]`` (nl, a semicolon because the comma is decimal) or ``[0.12, 0.34]`` (en)."""
    if is_missing(lo) or is_missing(hi):
        return MISSING
    sep = "; " if lang == "nl" else ", "
    return f"[{fmt_num(lo, digits, lang)}{sep}{fmt_num(hi, digits, lang)}]"


def _as_datetime(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        return value
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError("Not a date", expected="an ISO 8601 date or date-time, e.g. 2026-11-23", found=repr(value)) from exc


def fmt_date(value: Any, lang: str = "nl") -> str:
    """A date as ``23 november 2026`` (nl) or ``23 November 2026`` (en)."""
    check_lang(lang)
    if is_missing(value):
        return MISSING
    from babel.dates import format_date

    return format_date(_as_datetime(value).date(), "d MMMM y", locale=LOCALES[lang])


def fmt_datetime(value: Any, lang: str = "nl") -> str:
    """A date and time: ``23 november 2026 om 14:05 (UTC)`` / ``23 November 2026 at 14:05 (UTC)``."""
    if is_missing(value):
        return MISSING
    d = _as_datetime(value)
    if d.tzinfo is not None:
        d = d.astimezone(_dt.UTC)
        zone = " (UTC)"
    else:
        zone = ""
    word = "om" if lang == "nl" else "at"
    return f"{fmt_date(d, lang)} {word} {d:%H:%M}{zone}"


def tick_decimals(values: Any, max_digits: int = 6) -> int:
    """The fewest decimals that write every tick value exactly (``0, 0.25, 0.5`` → 2).

    >>> tick_decimals([0, 0.25, 0.5, 0.75])
    2
    >>> tick_decimals([0, 10, 20])
    0
    """
    vals = [float(v) for v in values if not is_missing(v) and math.isfinite(float(v))]
    for d in range(max_digits + 1):
        if all(abs(round(v, d) - v) <= 1e-9 * max(1.0, abs(v)) for v in vals):
            return d
    return max_digits


def tick_formatter(lang: str = "nl") -> Any:
    """A matplotlib tick formatter in the report's number format, its decimals from the tick step.

    Every label parses back to its tick value: ticks at 0, 0.25, 0.5 read ``0,00 0,25 0,50``.
    """
    from matplotlib.ticker import Formatter

    check_lang(lang)

    class _LocaleTicks(Formatter):  # type: ignore[misc]
        def __init__(self) -> None:
            self.digits = 0

        def format_ticks(self, values: Any) -> list[str]:
            self.set_locs(values)
            self.digits = tick_decimals(values)
            return [self(v, i) for i, v in enumerate(values)]

        def __call__(self, x: float, pos: int | None = None) -> str:
            return fmt_num(x, self.digits, lang)

    return _LocaleTicks()
