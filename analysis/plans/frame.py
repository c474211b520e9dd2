"""POP documents in, the sampling frame out.

Input formats for POP texts
---------------------------
* **A folder** of ``.txt`` (UTF-8), ``.docx`` or ``.pdf`` files, one per POP, named after the
  trajectory: ``LBT00001234.txt``.  Sub-folders are read too.
* **A table** (``.csv``, UTF-8 with a header, or ``.parquet``) with one row per POP: an id column
  (default ``trajectory_id``) and a text column (default ``text``).

The id is the VDAB ``trajectory_id`` of the loopbaancheque trajectory that produced the POP.  Every id
must be a trajectory of the VDAB extract with ``pop_made = 1``; unknown or duplicate ids, empty texts
and unreadable files are errors naming the file (and row).

Privacy
-------
POP texts are personal data.  :func:`mask_personal` replaces INSZ-like numbers and e-mail addresses
before any text is written to a coding sheet; texts never enter the bundle, the report or logs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from survey.errors import DataValidationError

__all__ = ["FOLLOWED_COLUMNS", "NO_INCENTIVE", "build_frame", "followed_trainings", "mask_personal", "read_texts"]

#: The ``incentive`` of a POP whose trajectory was not followed by an approved POP-based application
#: (a stratum of its own in the sample).
NO_INCENTIVE = "geen"

#: INSZ/RRN-like strings: 11 digits, optionally grouped as YY.MM.DD-SSS.CC (dots, dashes, slashes, spaces).
#: Not preceded by a digit: written as "a digit, and not two digits up to it" so that the pattern starts
#: with a digit (the regex engine then skips to the digits instead of trying every position).
_INSZ_RE = re.compile(r"\d(?<!\d\d)\d[./\- ]?\d{2}[./\- ]?\d{2}[./\- ]?\d{3}[./\- ]?\d{2}(?!\d)")
#: e-mail addresses, also written with ``[at]``, ``(at)`` or `` at `` (and ``[dot]``/``(dot)``) instead of ``@``/``.``.
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9._%+\-]+(?:@|\s?\[at\]\s?|\s?\(at\)\s?|\s+at\s+)[A-Za-z0-9\-]+(?:(?:\.|\s?\[dot\]\s?|\s?\(dot\)\s?)[A-Za-z0-9\-]+)*(?:\.|\s?\[dot\]\s?|\s?\(dot\)\s?)[A-Za-z]{2,}\b",
    re.IGNORECASE,
)
#: what every match of ``_EMAIL_RE`` contains (one of its separators); a text without it has no e-mail address
_EMAIL_SEPARATOR_RE = re.compile(r"@|\[at\]|\(at\)|\sat\s", re.IGNORECASE)
_ID_RE = re.compile(r"LBT\d{8}")


def mask_personal(text: str) -> str:
    """Mask INSZ-like numbers (``[INSZ]``) and e-mail addresses (``[e-mail]``) in a POP text."""
    if _EMAIL_SEPARATOR_RE.search(text):  # the address pattern is slow: only where a separator is
        text = _EMAIL_RE.sub("[e-mail]", text)
    return _INSZ_RE.sub("[INSZ]", text)


def _read_document(path: Path) -> str:
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            return path.read_text(encoding="utf-8")
        if suffix == ".docx":
            import docx

            return "\n".join(p.text for p in docx.Document(str(path)).paragraphs)
        if suffix == ".pdf":
            from pypdf import PdfReader

            return "\n".join((page.extract_text() or "") for page in PdfReader(str(path)).pages)
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            "A POP text file is not UTF-8", file=path, expected="UTF-8 text", found=str(exc)[:80], hint="save the file as UTF-8"
        ) from None
    except Exception as exc:  # a corrupt .docx/.pdf: name the file, never print its content
        raise DataValidationError(
            "A POP document cannot be read", file=path, expected=f"a valid {suffix} file", found=type(exc).__name__, hint="re-export the document"
        ) from None
    raise DataValidationError("Unsupported POP document type", file=path, expected=".txt, .docx or .pdf", found=suffix or "(no extension)")


#: pop id -> (the file it was read from, its row in a table; ``None`` for a document)
_Origins = dict[str, tuple[Path, int | None]]


def read_texts(source: str | Path, id_column: str = "trajectory_id", text_column: str = "text") -> pd.DataFrame:
    """Read POP texts from a folder of documents or a table.

    Returns
    -------
    pd.DataFrame
        ``pop_id`` (the trajectory id) and ``text`` (unmasked; keep it in memory only), one row per POP.
    """
    source = Path(source)
    if not source.exists():
        raise DataValidationError(
            "POP texts not found", file=source, expected="a folder of .txt/.docx/.pdf files or a .csv/.parquet table", found="no such path", hint="check [plans] texts in the study configuration"
        )
    if source.is_dir():
        out, where = _texts_from_folder(source)
    else:
        out, where = _texts_from_table(source, id_column, text_column)
    empty = out["text"].str.strip() == ""
    if empty.any():
        k = int(empty.to_numpy().nonzero()[0][0])
        f, r = where[out["pop_id"].iloc[k]]
        raise DataValidationError("A POP text is empty", file=f, row=r, column=None if r is None else text_column, expected="the POP's text", found="an empty text", hint=f"{int(empty.sum())} empty text(s)")
    out.attrs["source"] = str(source)
    return out


def _texts_from_folder(source: Path) -> tuple[pd.DataFrame, _Origins]:
    """One document per POP, named after its trajectory id: the texts and each one's file."""
    files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".docx", ".pdf"))
    if not files:
        raise DataValidationError("The POP folder holds no documents", file=source, expected=".txt, .docx or .pdf files", found="none")
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, str] = {}
    for f in files:
        if not _ID_RE.fullmatch(f.stem):
            raise DataValidationError(
                "A POP file name is not a trajectory id", file=f, expected="LBT followed by 8 digits, e.g. LBT00001234.txt", found=f.stem, hint="rename the file after the VDAB trajectory_id"
            )
        if f.stem in seen:
            raise DataValidationError("Two POP files for one trajectory", file=f, expected="one file per trajectory", found=f"also {seen[f.stem]}")
        seen[f.stem] = f.name
        ids.append(f.stem)
        texts.append(_read_document(f))
    where: _Origins = {i: (files[k], None) for k, i in enumerate(ids)}
    return pd.DataFrame({"pop_id": ids, "text": texts}), where


def _texts_from_table(source: Path, id_column: str, text_column: str) -> tuple[pd.DataFrame, _Origins]:
    """A .csv or .parquet table with one row per POP: the texts and each one's row."""
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        raw = pd.read_parquet(source)
    elif suffix == ".csv":
        raw = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    else:
        raise DataValidationError("Unsupported POP table", file=source, expected=".csv or .parquet", found=suffix)
    for col in (id_column, text_column):
        if col not in raw.columns:
            raise DataValidationError(
                "The POP table lacks a column", file=source, column=col, expected=f"columns {id_column!r} and {text_column!r}", found=", ".join(map(str, raw.columns)), hint="set [plans] id_column / text_column"
            )
    out = pd.DataFrame({"pop_id": raw[id_column].astype(str).str.strip(), "text": raw[text_column].fillna("").astype(str)})
    where: _Origins = {}
    for k, i in enumerate(out["pop_id"]):
        if not _ID_RE.fullmatch(i):
            raise DataValidationError("A POP id is not a trajectory id", file=source, row=k + 1, column=id_column, expected="LBT followed by 8 digits", found=repr(i[:20]))
        if i in where:
            raise DataValidationError("Duplicate POP id", file=source, row=k + 1, column=id_column, expected="one row per trajectory", found=f"{i} (also row {where[i][1]})")
        where[i] = (source, k + 1)
    return out, where


#: the DWSE columns :func:`followed_trainings` (and so :func:`build_frame`) reads
FOLLOWED_COLUMNS = ("application_id", "person_key", "incentive", "application_date", "status", "pop_based", "training_id")


def followed_trainings(traj: pd.DataFrame, dwse: pd.DataFrame) -> pd.DataFrame:
    """The training followed after each trajectory: the person's first approved POP-based application
    on or after the trajectory's start (``trajectory_id``, ``incentive``, ``followed_training_id``;
    trajectories without one are absent)."""
    apps = dwse[(dwse["status"].astype(str) == "goedgekeurd") & dwse["pop_based"].astype(bool)]
    apps = apps[["person_key", "application_date", "application_id", "incentive", "training_id"]]
    m = traj[["trajectory_id", "person_key", "start_date"]].merge(apps, on="person_key", how="inner")
    m = m[pd.to_datetime(m["application_date"]) >= pd.to_datetime(m["start_date"])]
    m = m.sort_values(["trajectory_id", "application_date", "application_id"], kind="stable").drop_duplicates("trajectory_id")
    return pd.DataFrame(
        {"trajectory_id": m["trajectory_id"].to_numpy(), "incentive": m["incentive"].astype(str).to_numpy(), "followed_training_id": m["training_id"].to_numpy()}
    )


def build_frame(texts: pd.DataFrame, traj: pd.DataFrame, dwse: pd.DataFrame, population: str = "attest") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sampling frame of POPs (no text) and the counts of its construction.

    Parameters
    ----------
    texts
        From :func:`read_texts`.
    traj, dwse
        The validated VDAB and DWSE extracts.
    population
        ``"attest"``: POPs of trajectories with a POP-attest (the study's population); ``"all"``: every POP.

    Returns
    -------
    frame
        ``pop_id``, ``loopbaancentrum``, ``centre_size`` (klein/middel/groot by the centre's number of
        POPs in the frame), ``incentive`` (of the training followed, or ``geen``), ``school_year`` (of the
        trajectory's end), ``has_attest``, ``attest_training_id``, ``followed_training_id``.
    counts
        ``step``, ``n``: every text and trajectory accounted for.
    """
    source = texts.attrs.get("source")
    t = traj.set_index("trajectory_id")
    unknown = ~texts["pop_id"].isin(t.index)
    if unknown.any():
        k = int(unknown.to_numpy().nonzero()[0][0])
        raise DataValidationError(
            "A POP text has no VDAB trajectory", file=source, row=k + 1, column="trajectory_id", expected="a trajectory_id of the VDAB extract", found=str(texts["pop_id"].iloc[k]), hint=f"{int(unknown.sum())} unknown id(s); check the extract's period"
        )
    no_pop = ~t.loc[texts["pop_id"], "pop_made"].astype(bool).to_numpy()
    if no_pop.any():
        k = int(no_pop.nonzero()[0][0])
        raise DataValidationError(
            "A POP text belongs to a trajectory without a POP", file=source, row=k + 1, column="trajectory_id", expected="pop_made = 1 in the VDAB extract", found=str(texts["pop_id"].iloc[k])
        )
    f = traj[traj["trajectory_id"].isin(texts["pop_id"])].copy()
    f = f.merge(followed_trainings(traj, dwse), on="trajectory_id", how="left")
    f["incentive"] = f["incentive"].fillna(NO_INCENTIVE)
    f["has_attest"] = f["pop_attest"].astype(bool) & f["attest_training_id"].notna()
    counts = [
        ("trajectories with a POP (VDAB)", int(traj["pop_made"].astype(bool).sum())),
        ("POP texts read", len(texts)),
        ("POPs without text", int(traj["pop_made"].astype(bool).sum()) - len(texts)),
        ("POPs with a POP-attest", int(f["has_attest"].sum())),
    ]
    if population == "attest":
        f = f[f["has_attest"]]
    elif population != "all":
        raise DataValidationError("Unknown POP population", param="plans.population", expected="attest or all", found=population)
    counts.append(("POPs in the frame", len(f)))
    end = pd.to_datetime(f["end_date"]).fillna(pd.to_datetime(f["start_date"]))
    sy = end.dt.year - (end.dt.month < 9).astype(int)
    f["school_year"] = sy.astype(str) + "-" + (sy + 1).astype(str).str[-2:]
    # centres ordered by their number of POPs (ties by code); each third of the POPs is one size class
    sizes = f.groupby("loopbaancentrum").size().sort_values(kind="stable")
    mid = (sizes.cumsum() - sizes / 2) / max(1, len(f))
    size_class = pd.cut(mid, [-0.01, 1 / 3, 2 / 3, 1.01], labels=["klein", "middel", "groot"]).astype(str)
    f["centre_size"] = f["loopbaancentrum"].map(size_class)
    frame = pd.DataFrame(
        {
            "pop_id": f["trajectory_id"].astype(str),
            "loopbaancentrum": f["loopbaancentrum"].astype(str),
            "centre_size": f["centre_size"],
            "incentive": f["incentive"].astype(str),
            "school_year": f["school_year"],
            "has_attest": f["has_attest"].astype(bool),
            "attest_training_id": f["attest_training_id"],
            "followed_training_id": f["followed_training_id"],
        }
    ).sort_values("pop_id", kind="stable").reset_index(drop=True)
    return frame, pd.DataFrame(counts, columns=["step", "n"])
