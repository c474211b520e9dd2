"""Coding sheets (.xlsx) for two or more coders, reading them back, and the reconciliation sheet.

Each coder gets a workbook ``coder_<name>.xlsx`` with one sheet ``codering``: one row per sampled POP
(``pop_id``, the masked POP text, the attest's training, then one column per code with a drop-down of
the codebook's values), a ``codeboek`` sheet with the codes, definitions and rules, and a
``LEESMIJ`` sheet saying that the file contains personal text.  The rows are in a coder-specific random
order and no sheet shows another coder's codes (blind coding).

:func:`read_sheets` reads the filled workbooks back.  Every invalid code, empty cell, unknown or
duplicate POP id, missing POP or missing column is an error naming the workbook, the sheet, the
Excel row and the column; all problems are listed at once (up to 25).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.plans.codebook import CODEBOOK, Codebook
from survey.errors import DataValidationError

__all__ = [
    "PERSONAL_DATA_NOTICE",
    "coder_sheets",
    "coding_progress",
    "fill_reconciliation",
    "fill_sheet",
    "read_reconciliation",
    "read_sheets",
    "write_reconciliation",
    "write_sheets",
]

SHEET = "codering"
RECONCILE_SHEET = "reconciliatie"


#: workbooks read, by (path, SHA-256 of the file): their sheet names and the rows of the sheets read
_ROWS_READ: dict[tuple[str, str], tuple[list[str], dict[str, list[tuple[Any, ...]]]]] = {}


def sheet_rows(path: str | Path, sheet: str) -> tuple[list[str], list[tuple[Any, ...]] | None]:
    """A workbook's sheet names and the cell values of ``sheet`` (``None`` without it), row by row.

    Read once per file content in a process (a run counts the coders' progress, then reads their
    codes); openpyxl's errors are the caller's to name.
    """
    from openpyxl import load_workbook

    from survey.hashing import sha256_file

    key = (str(Path(path).resolve()), sha256_file(Path(path)))
    hit = _ROWS_READ.get(key)
    if hit is None or (sheet in hit[0] and sheet not in hit[1]):
        wb = load_workbook(path, read_only=True, data_only=True)
        try:
            names = list(wb.sheetnames)
            sheets = dict(hit[1]) if hit else {}
            if sheet in names:
                sheets[sheet] = list(wb[sheet].iter_rows(values_only=True))
        finally:
            wb.close()
        if len(_ROWS_READ) >= 8:
            _ROWS_READ.clear()
        hit = _ROWS_READ[key] = (names, sheets)
    names, sheets = hit
    return list(names), (list(sheets[sheet]) if sheet in sheets else None)


_FIXED = ("pop_id", "pop_tekst", "attest_opleiding")
PERSONAL_DATA_NOTICE = (
    "BEVAT PERSOONSGEGEVENS. Dit werkbestand bevat (gemaskeerde) tekst uit persoonlijke ontwikkelingsplannen. "
    "Bewaar het enkel in de afgeschermde werkmap van de studie, verspreid het niet en verwijder het na de codering."
)


def _flag_personal(wb: Any) -> None:
    """Mark the workbook itself (document properties) as holding personal text."""
    wb.properties.keywords = "persoonsgegevens; personal data; POP"
    wb.properties.subject = "Werkbestand met persoonsgegevens (POP-teksten)"
    wb.properties.description = PERSONAL_DATA_NOTICE


def _atomic_save(wb: object, path: Path) -> None:
    tmp = path.with_suffix(".tmp.xlsx")
    wb.save(tmp)  # type: ignore[attr-defined]
    tmp.replace(path)


def _codebook_sheet(wb: object, codebook: Codebook) -> None:
    ws = wb.create_sheet("codeboek")  # type: ignore[attr-defined]
    ws.append(["code", "label", "waarden", "definitie", "beslisregels", "voorbeelden"])
    for c in codebook.codes:
        vals = "; ".join(f"{v.code} = {v.label_nl}" for v in c.values)
        examples = "\n".join(f"{t} -> {v}" for t, v in c.examples)
        ws.append([c.name, c.label_nl, vals, c.definition, "\n".join(c.rules), examples])
    lists = wb.create_sheet("lijsten")  # type: ignore[attr-defined]
    for j, c in enumerate(codebook.codes, start=1):
        for i, v in enumerate(c.allowed, start=1):
            lists.cell(row=i, column=j, value=v)
    lists.sheet_state = "hidden"


def coder_sheets(folder: str | Path) -> list[Path]:
    """The coder workbooks in ``folder`` (``coder_*.xlsx``), sorted by name."""
    return sorted(Path(folder).glob("coder_*.xlsx"))


def write_sheets(
    folder: str | Path,
    units: pd.DataFrame,
    coders: Sequence[str],
    *,
    codebook: Codebook = CODEBOOK,
    seed: int = 2023,
    overwrite: bool = False,
) -> list[Path]:
    """Write one blind coding workbook per coder.

    Parameters
    ----------
    folder
        The working folder (in the study's derived folder, never in the bundle).
    units
        ``pop_id``, ``text`` (already masked: :func:`analysis.plans.frame.mask_personal`) and
        ``attest_training`` (name on the POP-attest).
    coders
        Coder names (at least two), e.g. ``["A", "B"]``.
    overwrite
        Replace existing sheets (which may hold coding work); refused by default.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    if len(coders) < 2 or len(set(coders)) != len(coders):
        raise DataValidationError("Coding needs two or more distinct coders", param="plans.coders", expected="e.g. ['A', 'B']", found=repr(list(coders)))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    existing = [folder / f"coder_{c}.xlsx" for c in coders if (folder / f"coder_{c}.xlsx").exists()]
    if existing and not overwrite:
        raise DataValidationError(
            "Coding sheets already exist and may hold coding work", file=existing[0], expected="no sheets yet", found=f"{len(existing)} existing sheet(s)", hint="use --overwrite to replace them"
        )
    paths = []
    for k, coder in enumerate(coders):
        wb = Workbook()
        _flag_personal(wb)
        ws = wb.active
        ws.title = SHEET
        header = [*_FIXED, *codebook.names]
        ws.append(header)
        for j in range(1, len(header) + 1):
            ws.cell(row=1, column=j).font = Font(bold=True)
        rng = np.random.default_rng([seed, 53, k])
        order = rng.permutation(len(units))
        for i in order:
            r = units.iloc[int(i)]
            ws.append([str(r["pop_id"]), str(r["text"]), "" if pd.isna(r["attest_training"]) else str(r["attest_training"]), *([None] * len(codebook.codes))])
        last = len(units) + 1
        for j, c in enumerate(codebook.codes):
            col = get_column_letter(len(_FIXED) + 1 + j)
            lcol = get_column_letter(j + 1)
            dv = DataValidation(type="list", formula1=f"=lijsten!${lcol}$1:${lcol}${len(c.allowed)}", allow_blank=False, showErrorMessage=True)
            dv.error = f"Kies een waarde uit het codeboek: {', '.join(c.allowed)}"
            dv.add(f"{col}2:{col}{max(2, last)}")
            ws.add_data_validation(dv)
            ws.column_dimensions[col].width = 16
        ws.column_dimensions["A"].width = 14
        ws.column_dimensions["B"].width = 90
        ws.column_dimensions["C"].width = 36
        for row in ws.iter_rows(min_row=2, min_col=2, max_col=2):
            for cell in row:
                cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.freeze_panes = "D2"
        note = wb.create_sheet("LEESMIJ", 0)
        note["A1"] = PERSONAL_DATA_NOTICE
        note["A1"].font = Font(bold=True, color="FFFFFF")
        note["A1"].fill = PatternFill("solid", fgColor="C00000")
        note["A3"] = f"Codeur: {coder}. Codeer elke rij in het blad '{SHEET}' met de keuzelijsten; overleg niet met andere codeurs."
        note.column_dimensions["A"].width = 140
        wb.active = 1
        _codebook_sheet(wb, codebook)
        path = folder / f"coder_{coder}.xlsx"
        _atomic_save(wb, path)
        paths.append(path)
    return paths


def _problem(path: Path, sheet: str, row: int | None, column: str | None, what: str) -> str:
    where = f"{path.name}, sheet {sheet!r}" + (f", row {row}" if row else "") + (f", column {column!r}" if column else "")
    return f"{where}: {what}"


def _raise(problems: list[str], path: Path | None, title: str) -> None:
    if not problems:
        return
    shown = problems[:25]
    more = f"\n  ... and {len(problems) - 25} more" if len(problems) > 25 else ""
    raise DataValidationError(
        title,
        file=path,
        expected="one row per sampled POP with a codebook value in every code column",
        found=f"{len(problems)} problem(s)",
        hint="correct the sheet(s) and run `popeval plans ingest` again",
        detail="\n  " + "\n  ".join(shown) + more,
    )


def read_sheets(paths: Sequence[str | Path], sample_ids: Sequence[str], *, codebook: Codebook = CODEBOOK) -> pd.DataFrame:
    """Read filled coder workbooks.

    Returns
    -------
    pd.DataFrame
        Long format: ``coder``, ``pop_id``, then one column per code (strings), one row per coder and POP.
    """
    if len(paths) < 2:
        raise DataValidationError("Agreement needs two or more coder sheets", expected="coder_<name>.xlsx files", found=str(len(paths)), hint="run `popeval plans sheets` first")
    wanted = set(sample_ids)
    frames = []
    problems: list[str] = []
    for p in map(Path, paths):
        frame = _read_sheet(p, wanted, codebook, problems)
        if frame is not None:
            frames.append(frame)
    _raise(problems, Path(paths[0]).parent, "The coding sheets have problems")
    return pd.concat(frames, ignore_index=True).sort_values(["pop_id", "coder"], kind="stable").reset_index(drop=True)


def _read_sheet(p: Path, wanted: set[str], codebook: Codebook, problems: list[str]) -> pd.DataFrame | None:
    """One coder's workbook (its problems added to ``problems``); ``None`` without its sheet or a code column."""

    coder = p.stem.removeprefix("coder_")
    try:
        names, found = sheet_rows(p, SHEET)
    except Exception as exc:
        raise DataValidationError("A coding sheet cannot be opened", file=p, expected="an .xlsx workbook", found=type(exc).__name__) from None
    if found is None:
        problems.append(_problem(p, SHEET, None, None, f"sheet missing (found {', '.join(names)})"))
        return None
    rows = found
    header = [str(h).strip() if h is not None else "" for h in (rows[0] if rows else [])]
    col_of = {h: i for i, h in enumerate(header)}
    missing = [c for c in ("pop_id", *codebook.names) if c not in col_of]
    for name in missing:
        problems.append(_problem(p, SHEET, 1, name, "column missing from the header"))
    if missing:
        return None
    seen: dict[str, int] = {}
    recs = []
    for r, values in enumerate(rows[1:], start=2):
        if values is None or all(v is None or str(v).strip() == "" for v in values):
            continue
        pid_raw = values[col_of["pop_id"]]
        pid = "" if pid_raw is None else str(pid_raw).strip()
        if not pid:
            problems.append(_problem(p, SHEET, r, "pop_id", "empty POP id"))
            continue
        if pid not in wanted:
            problems.append(_problem(p, SHEET, r, "pop_id", f"unknown POP id {pid!r} (not in the sample)"))
            continue
        if pid in seen:
            problems.append(_problem(p, SHEET, r, "pop_id", f"duplicate POP id {pid!r} (also row {seen[pid]})"))
            continue
        seen[pid] = r
        recs.append(_sheet_record(p, r, values, col_of, codebook, {"coder": coder, "pop_id": pid}, problems))
    absent = sorted(wanted - set(seen))
    if absent:
        problems.append(_problem(p, SHEET, None, "pop_id", f"{len(absent)} sampled POP(s) missing, e.g. {absent[0]}"))
    return pd.DataFrame(recs, columns=["coder", "pop_id", *codebook.names])


def _sheet_record(p: Path, r: int, values: tuple[Any, ...], col_of: dict[str, int], codebook: Codebook, rec: dict[str, str],
                  problems: list[str]) -> dict[str, str]:
    """Row ``r``'s codes added to ``rec``: each one checked against the codebook, then their consistency."""
    from openpyxl.utils import get_column_letter

    ok = True
    for c in codebook.codes:
        j = col_of[c.name]
        v = values[j] if j < len(values) else None
        s = "" if v is None else str(v).strip()
        letter = get_column_letter(j + 1)
        if s == "":
            problems.append(_problem(p, SHEET, r, f"{c.name} ({letter})", "empty cell"))
            ok = False
        elif s not in c.allowed:
            problems.append(_problem(p, SHEET, r, f"{c.name} ({letter})", f"invalid code {s[:30]!r}; allowed: {', '.join(c.allowed)}"))
            ok = False
        rec[c.name] = s
    if ok:
        bad = codebook.check_consistency(rec)
        if bad:
            problems.append(_problem(p, SHEET, r, None, bad))
    return rec


def coding_progress(path: str | Path, *, codebook: Codebook = CODEBOOK) -> tuple[int, int]:
    """``(coded, total)``: rows of a coder workbook with a value in every code column, and all rows.

    A progress count only; :func:`read_sheets` checks the values.
    """

    path = Path(path)
    try:
        names, found = sheet_rows(path, SHEET)
    except Exception as exc:
        raise DataValidationError("A coding sheet cannot be opened", file=path, expected="an .xlsx workbook", found=type(exc).__name__) from None
    if found is None:
        raise DataValidationError("A coding sheet lacks its sheet", file=path, expected=SHEET, found=", ".join(names), hint="restore the workbook written by `popeval plans sheets`")
    rows = found
    header = [str(h).strip() if h is not None else "" for h in (rows[0] if rows else [])]
    cols = [header.index(c) for c in codebook.names if c in header]
    body = [r for r in rows[1:] if r and r[0] is not None and str(r[0]).strip()]
    done = sum(1 for r in body if len(cols) == len(codebook.names) and all(j < len(r) and r[j] is not None and str(r[j]).strip() for j in cols))
    return done, len(body)


def fill_sheet(path: str | Path, code: Callable[[str], dict[str, str]]) -> Path:
    """Fill a coder workbook's code columns with ``code(pop_id)`` (used by the demo's simulated coders)."""
    from openpyxl import load_workbook

    path = Path(path)
    wb = load_workbook(path)
    ws = wb[SHEET]
    header = [c.value for c in ws[1]]
    for r in range(2, ws.max_row + 1):
        pid = ws.cell(row=r, column=1).value
        if not pid:
            continue
        for name, value in code(str(pid)).items():
            ws.cell(row=r, column=header.index(name) + 1, value=value)
    _atomic_save(wb, path)
    return path


def write_reconciliation(path: str | Path, disagreements: pd.DataFrame, texts: pd.DataFrame, coders: Sequence[str], *, codebook: Codebook = CODEBOOK) -> Path:
    """Write the reconciliation workbook: one row per POP and code on which the coders disagree.

    Columns ``pop_id``, ``code``, one column per coder with that coder's value, ``pop_tekst`` (masked)
    and ``definitief`` (drop-down): the reconciled value the researchers agree on.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    path = Path(path)
    wb = Workbook()
    _flag_personal(wb)
    ws = wb.active
    ws.title = RECONCILE_SHEET
    ws.append(["pop_id", "code", *[f"codeur_{c}" for c in coders], "pop_tekst", "definitief"])
    text_of = dict(zip(texts["pop_id"], texts["text"], strict=True))
    allowed_all = sorted({v for c in codebook.codes for v in c.allowed})
    for row in disagreements.itertuples(index=False):
        ws.append([row.pop_id, row.code, *[getattr(row, f"coder_{c}") for c in coders], text_of.get(row.pop_id, ""), None])
    last_col = ws.max_column
    from openpyxl.utils import get_column_letter

    letter = get_column_letter(last_col)
    dv = DataValidation(type="list", formula1='"' + ",".join(allowed_all) + '"', allow_blank=False)
    dv.add(f"{letter}2:{letter}{max(2, ws.max_row)}")
    ws.add_data_validation(dv)
    for j in range(1, last_col + 1):
        ws.cell(row=1, column=j).font = Font(bold=True)
    note = wb.create_sheet("LEESMIJ", 0)
    note["A1"] = PERSONAL_DATA_NOTICE
    note["A3"] = "Vul in 'definitief' de waarde in waarover de codeurs na overleg akkoord gaan (een waarde uit het codeboek van die code)."
    wb.active = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(wb, path)
    return path


def read_reconciliation(path: str | Path, disagreements: pd.DataFrame, *, codebook: Codebook = CODEBOOK) -> pd.DataFrame:
    """Read the reconciled values (``pop_id``, ``code``, ``value``); every open or invalid row is an error."""

    path = Path(path)
    names, found = sheet_rows(path, RECONCILE_SHEET)
    if found is None:
        raise DataValidationError("The reconciliation workbook lacks its sheet", file=path, expected=RECONCILE_SHEET, found=", ".join(names))
    rows = found
    header = [str(h) for h in rows[0]]
    for need in ("pop_id", "code", "definitief"):
        if need not in header:
            raise DataValidationError("The reconciliation sheet lacks a column", file=path, column=need, expected=", ".join(header))
    ip, ic, iv = header.index("pop_id"), header.index("code"), header.index("definitief")
    wanted = {(str(r.pop_id), str(r.code)) for r in disagreements.itertuples(index=False)}
    problems: list[str] = []
    out, seen = [], set()
    for r, values in enumerate(rows[1:], start=2):
        key = (str(values[ip]), str(values[ic]))
        v = "" if values[iv] is None else str(values[iv]).strip()
        if key not in wanted:
            problems.append(_problem(path, RECONCILE_SHEET, r, "pop_id", f"{key[0]} / {key[1]} is not a disagreement of the current sheets"))
            continue
        if key in seen:
            problems.append(_problem(path, RECONCILE_SHEET, r, "pop_id", f"duplicate row for {key[0]} / {key[1]}"))
            continue
        seen.add(key)
        allowed = codebook[key[1]].allowed
        if v == "":
            problems.append(_problem(path, RECONCILE_SHEET, r, "definitief", "empty: the disagreement is not reconciled yet"))
        elif v not in allowed:
            problems.append(_problem(path, RECONCILE_SHEET, r, "definitief", f"invalid code {v[:30]!r}; allowed for {key[1]}: {', '.join(allowed)}"))
        else:
            out.append({"pop_id": key[0], "code": key[1], "value": v})
    missing = wanted - seen
    if missing:
        k = sorted(missing)[0]
        problems.append(_problem(path, RECONCILE_SHEET, None, None, f"{len(missing)} disagreement(s) have no row, e.g. {k[0]} / {k[1]}"))
    if problems:
        raise DataValidationError(
            "The reconciliation sheet is incomplete or invalid",
            file=path,
            expected="a codebook value in 'definitief' for every disagreement",
            found=f"{len(problems)} problem(s)",
            hint="fill the sheet and run `popeval plans ingest` again",
            detail="\n  " + "\n  ".join(problems[:25]),
        )
    return pd.DataFrame(out, columns=["pop_id", "code", "value"])


def fill_reconciliation(path: str | Path, decide: Callable[[str, str], str]) -> Path:
    """Fill the ``definitief`` column with ``decide(pop_id, code)`` (the demo's reconciling researcher)."""
    from openpyxl import load_workbook

    path = Path(path)
    wb = load_workbook(path)
    ws = wb[RECONCILE_SHEET]
    header = [c.value for c in ws[1]]
    iv = header.index("definitief") + 1
    for r in range(2, ws.max_row + 1):
        pid, code = ws.cell(row=r, column=1).value, ws.cell(row=r, column=2).value
        if pid:
            ws.cell(row=r, column=iv, value=decide(str(pid), str(code)))
    _atomic_save(wb, path)
    return path
