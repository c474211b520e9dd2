"""Belgian (nl) and English number, percentage and date formatting."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from analysis.report.formatting import (
    MISSING,
    NBSP,
    fmt_ci,
    fmt_date,
    fmt_datetime,
    fmt_int,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_signed,
)
from survey.errors import ConfigError


@pytest.mark.parametrize(
    ("x", "digits", "nl", "en"),
    [
        (12345.678, 2, "12.345,68", "12,345.68"),
        (0.5, 1, "0,5", "0.5"),
        (1234567, 0, "1.234.567", "1,234,567"),
        (999.96, 1, "1.000,0", "1,000.0"),
        (-3.25, 2, "−3,25", "−3.25"),
        (-0.001, 2, "0,00", "0.00"),
        (0, 0, "0", "0"),
    ],
)
def test_fmt_num(x: float, digits: int, nl: str, en: str) -> None:
    assert fmt_num(x, digits, "nl") == nl
    assert fmt_num(x, digits, "en") == en


def test_fmt_int_and_missing() -> None:
    assert fmt_int(20417) == "20.417"
    assert fmt_int(20417, "en") == "20,417"
    assert fmt_int(None) == MISSING
    assert fmt_num(math.nan) == MISSING
    assert fmt_pct(float("nan")) == MISSING


def test_fmt_pct() -> None:
    assert fmt_pct(12.34) == f"12,3{NBSP}%"
    assert fmt_pct(0.123, proportion=True) == f"12,3{NBSP}%"
    assert fmt_pct(12.34, lang="en") == "12.3%"
    assert fmt_pct(100, 0) == f"100{NBSP}%"


def test_fmt_signed_p_ci() -> None:
    assert fmt_signed(0.25) == "+0,25"
    assert fmt_signed(-0.1) == "−0,10"
    assert fmt_signed(0.0) == "0,00"
    assert fmt_p(0.0004) == f"<{NBSP}0,001"
    assert fmt_p(0.0123, "en") == "0.012"
    assert fmt_ci(0.12, 0.346) == "[0,12; 0,35]"
    assert fmt_ci(0.12, 0.346, lang="en") == "[0.12, 0.35]"
    assert fmt_ci(None, 1) == MISSING


def test_dates() -> None:
    assert fmt_date("2026-11-23") == "23 november 2026"
    assert fmt_date(dt.date(2026, 3, 1), "en") == "1 March 2026"
    assert fmt_datetime("2026-11-23T13:05:00Z") == "23 november 2026 om 13:05 (UTC)"
    assert fmt_datetime("2026-11-23T13:05:00+00:00", "en") == "23 November 2026 at 13:05 (UTC)"
    with pytest.raises(ConfigError):
        fmt_date("23/11/2026")


def test_unknown_language() -> None:
    with pytest.raises(ConfigError, match="language"):
        fmt_num(1.0, 1, "fr")


def test_tick_labels_take_their_decimals_from_the_step() -> None:
    from analysis.report.formatting import tick_decimals, tick_formatter

    assert tick_decimals([0, 0.25, 0.5, 0.75]) == 2
    assert tick_decimals([0, 10, 20, 30]) == 0
    assert tick_decimals([-0.1, 0.0, 0.1]) == 1
    assert tick_formatter("nl").format_ticks([0, 0.25, 0.5, 0.75]) == ["0,00", "0,25", "0,50", "0,75"]
    assert tick_formatter("en").format_ticks([0, 2000, 4000]) == ["0", "2,000", "4,000"]
    assert tick_formatter("nl").format_ticks([-10, 0, 10]) == ["−10", "0", "10"]
