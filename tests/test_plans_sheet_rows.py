"""Workbook rows read once per file content: a changed workbook is read again."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook

from analysis.plans.sheets import SHEET, coding_progress, sheet_rows
from survey.errors import DataValidationError


def _write(path: Path, rows: list[list[object]], title: str = SHEET) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title
    for r in rows:
        ws.append(r)
    wb.save(path)


def test_sheet_rows_follow_the_file_content(tmp_path: Path) -> None:
    p = tmp_path / "coder_A.xlsx"
    _write(p, [["pop_id", "code"], ["LBT00000001", "ja"]])
    names, rows = sheet_rows(p, SHEET)
    assert names == [SHEET] and rows == [("pop_id", "code"), ("LBT00000001", "ja")]
    assert rows is not None
    rows.append(("changed", "by the caller"))  # a copy
    assert sheet_rows(p, SHEET)[1] == [("pop_id", "code"), ("LBT00000001", "ja")]
    assert sheet_rows(p, "other") == ([SHEET], None)
    _write(p, [["pop_id", "code"], ["LBT00000001", "nee"], ["LBT00000002", None]])
    assert sheet_rows(p, SHEET)[1] == [("pop_id", "code"), ("LBT00000001", "nee"), ("LBT00000002", None)]
    _write(p, [["pop_id"]], title="blad1")
    with pytest.raises(DataValidationError, match="lacks its sheet"):
        coding_progress(p)
    p.write_bytes(b"not a workbook")
    with pytest.raises(DataValidationError, match="cannot be opened"):
        coding_progress(p)
