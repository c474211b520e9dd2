"""Turn a LimeSurvey snapshot into one typed, labelled respondent frame.

A snapshot (see :mod:`survey.fetch`) is a folder with ``responses.csv`` (or ``responses.json``),
``participants.json``, optionally ``fieldmap.json`` and ``manifest.json``.  :func:`parse_snapshot`
reads it into a :class:`RespondentData`; :func:`read_participants` reads the participants table alone.

Rules (every dropped or changed row is counted in :attr:`RespondentData.counts`):

* **Completion** comes from ``submitdate``: a response is complete when it has a non-empty
  submission date.  Incomplete responses are kept (``complete`` is ``False``) and counted.
* **Duplicate submissions** (several responses with the same token): keep the *latest complete*
  response (largest ``submitdate``, ties broken by the larger response id); when a token has no
  complete response, keep its latest incomplete one (largest ``datestamp``, then id).  The other rows
  are dropped and counted as ``duplicates_dropped``.  Responses without a token cannot be matched to
  each other and are all kept (``no_token``).
* **Person key**: ``person_key`` is the participant's ``attribute_1``, joined through the token.  A
  response whose token is not in the participants table is kept with ``person_key`` missing and
  counted (``no_participant``).
* **Outcomes** (:data:`survey.questionnaire.OUTCOMES`, or the study's own from its mapping) become ordered categoricals with categories
  1..5; 'weet niet' (99) is missing, flagged in ``<name>_dont_know`` and counted
  (``dont_know_<name>``).  Answers with ``missing=True`` in other questions become missing too and are
  counted (``missing_code_<name>``).
* **Column names**: code headings (``EFFECT[SQ001]``) and internal SGQA names
  (``742315X29X285SQ001``) both resolve, the latter through a fieldmap (``fieldmap.json`` in the
  snapshot, a ``get_fieldmap`` result, or one derived from the ``.lss``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from survey.errors import DataValidationError
from survey.lsformat import code_heading_map, parse_responses_bytes
from survey.questionnaire import DONT_KNOW, QUESTIONNAIRE, Question, Questionnaire

if TYPE_CHECKING:
    import pandas as pd

    from survey.mapping import SurveyMapping

__all__ = [
    "FIXED_COLUMNS",
    "RespondentData",
    "find_responses_file",
    "load_participant_list",
    "parse_snapshot",
    "read_participants",
    "read_responses",
    "resolve_header",
    "validate_participants",
]

#: The fixed columns of a LimeSurvey export (not anonymised, date stamps on), in export order.
FIXED_COLUMNS = ("id", "submitdate", "lastpage", "startlanguage", "seed", "token", "startdate", "datestamp")

_SGQA = re.compile(r"^\d+X\d+X\d+")


# ----------------------------------------------------------------------------- participants


def load_participant_list(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        if text.strip()[:1] not in ("[", "{"):
            first = text.strip().split("\n", 1)[0][:80]
            raise DataValidationError(
                "The participants file is not JSON",
                file=path,
                expected="the list_participants JSON (a list of participant objects, as `popeval fetch` stores it)",
                found=f"text starting {first!r}" + (" (a CSV?)" if ("," in first or ";" in first) else ""),
                hint="give the participants.json of a snapshot or the saved list_participants reply; "
                "a CSV export of the participants table cannot be used here",
            )
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        raise DataValidationError("The participants file is not UTF-8 text", file=path, found=str(exc),
                                  expected="the list_participants JSON") from exc
    except FileNotFoundError:
        raise DataValidationError(
            "The snapshot has no participants table",
            file=path,
            expected="participants.json (the list_participants result)",
            found="no such file",
            hint="fetch the survey again with `popeval fetch`, or pass the snapshot folder",
        ) from None
    except json.JSONDecodeError as exc:
        raise DataValidationError(
            "participants.json is not valid JSON", file=path, found=str(exc), hint="fetch the survey again"
        ) from exc
    if isinstance(data, dict) and "status" in data:
        # LimeSurvey's answer for an empty participants table.
        return []
    if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
        raise DataValidationError(
            "participants.json has an unexpected shape",
            file=path,
            expected="a JSON list of participant objects",
            found=type(data).__name__,
        )
    return data


def read_participants(
    snapshot_dir: str | Path, *, key_attribute: str = "attribute_1", pseudo_key: bytes | None = None
) -> pd.DataFrame:
    """The participants table of a snapshot: columns ``tid``, ``token``, ``attribute_1``.

    Parameters
    ----------
    snapshot_dir
        A snapshot folder (holding ``participants.json``), the ``participants.json`` file itself
        (``list_participants``), or the participants CSV that LimeSurvey's GUI exports.
    key_attribute
        The participant attribute holding the person key (returned as ``attribute_1``).
    pseudo_key
        When given, raw INSZ numbers in the key are pseudonymised with it (the same keyed hash as the
        admin extracts, so linkage works); when None they are refused.

    Returns
    -------
    pandas.DataFrame
        Validated against :data:`survey.datamodel.SURVEY_PARTICIPANTS` (``tid`` int, ``token`` and
        ``attribute_1`` strings); ``attribute_1`` holds the pseudonymous person key.

    Raises
    ------
    DataValidationError
        The file is missing, malformed, or a row breaks the data model (missing key, duplicate tid).
    """
    import pandas as pd

    path = Path(snapshot_dir)
    if path.is_dir():
        path = path / "participants.json"
    if path.suffix.lower() == ".csv":
        from survey.mapping import participants_csv

        raw = participants_csv(path, key_attribute)
    else:
        rows = load_participant_list(path)
        raw = pd.DataFrame(
            {
                "tid": [p.get("tid") for p in rows],
                "token": [_blank_to_none(p.get("token")) for p in rows],
                "attribute_1": [_blank_to_none(p.get(key_attribute)) for p in rows],
            },
            dtype=object,
        )
    from survey.insz import looks_like_insz

    key_col = raw["attribute_1"].astype("string")
    raw_insz = looks_like_insz(key_col).to_numpy()
    if raw_insz.any() and pseudo_key is not None:
        from survey.insz import pseudonymise

        key_col = key_col.astype(object)
        key_col[raw_insz] = pseudonymise(key_col[raw_insz], pseudo_key).to_numpy()
        raw = raw.assign(attribute_1=key_col)
    elif raw_insz.any():
        from survey.validate import refuse_raw_insz

        refuse_raw_insz(key_col, "survey_participants", path, key_attribute, raw=raw_insz,
                        hint="raw INSZ numbers must not be ingested: set pseudonymise = true under [admin] (with POPEVAL_PSEUDO_KEY set) "
                        "so they are pseudonymised with the extracts' key")
    return validate_participants(
        raw, path, key_attribute,
        duplicate_hint="LimeSurvey lists each participant once; a repeated tid means the participant pages overlapped "
        "(or the file was edited) - fetch the survey again with `popeval fetch`",
    )


def validate_participants(raw: pd.DataFrame, source: str | Path, key_attribute: str = "attribute_1", *, duplicate_hint: str | None = None) -> pd.DataFrame:
    """Check participants (``tid``, ``token``, ``attribute_1``) against the data model; return them typed.

    The checks are those of every input (:func:`survey.validate.validate_frame`, i.e. the DuckDB
    queries of :mod:`survey.sqlcheck` that check the admin extracts): row ``i`` is the ``i``-th
    participant; the key column is named as the file names it (``key_attribute``).
    """
    import pandas as pd

    from survey.datamodel import SURVEY_PARTICIPANTS
    from survey.validate import validate_frame

    frame = raw.loc[:, ["tid", "token", "attribute_1"]].astype(object)
    tids: list[str | None] = [None if v is None or v != v else str(v) for v in frame["tid"]]
    frame["tid"] = pd.Series(tids, index=frame.index, dtype=object)
    return validate_frame(frame, SURVEY_PARTICIPANTS, source=source, duplicate_hint=duplicate_hint, columns={"attribute_1": key_attribute})


def _blank_to_none(v: object) -> object:
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    return v


def resolve_header(header: list[str], fieldmap: Mapping[str, Any] | None, source: str | Path) -> list[str]:
    mapping = code_heading_map(fieldmap) if fieldmap else {}
    out = []
    for h in header:
        if h in mapping:
            out.append(mapping[h])
        elif _SGQA.match(h):
            raise DataValidationError(
                "An internal (SGQA) column name cannot be resolved",
                file=source,
                column=h,
                expected="a code heading such as EFFECT[SQ001], or an SGQA name in the fieldmap",
                found="no fieldmap" if not mapping else "a name that is not in the fieldmap",
                hint="export with code headings, or give the survey's fieldmap (fieldmap.json from `popeval fetch`, "
                "or the .lss via fieldmap=survey.lss.fieldmap_from_lss(...))",
            )
        else:
            out.append(h)
    return out


def read_responses(path: str | Path, fieldmap: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Read a LimeSurvey export file into a frame of strings (``None`` for NULL), code headings.

    Parameters
    ----------
    path
        A CSV or JSON export as LimeSurvey writes it.
    fieldmap
        Needed when the headings are internal SGQA names: a ``get_fieldmap`` result or a mapping
        SGQA -> code heading.
    """
    import pandas as pd

    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise DataValidationError(
            "The export is empty (0 bytes)", file=path, expected="a LimeSurvey export (an export without responses is a line break)",
            found="0 bytes", hint="the download or the copy did not finish; fetch or download the export again",
        )
    header, body = parse_responses_bytes(data, path)
    header = resolve_header(header, fieldmap, path)
    if not header:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in FIXED_COLUMNS})
    return pd.DataFrame(body, columns=header, dtype=object)


# ----------------------------------------------------------------------------- respondent frame


@dataclass(frozen=True)
class RespondentData:
    """The parsed survey: one row per respondent, and what happened on the way.

    Attributes
    ----------
    frame
        One row per respondent (see :func:`parse_snapshot` for the columns).
    counts
        Every dropped or changed row: ``raw_rows``, ``complete``, ``incomplete``,
        ``duplicates_dropped``, ``duplicate_tokens``, ``no_token``, ``no_participant``, ``linked``,
        ``respondents``, ``participants``, ``dont_know_<outcome>``, ``missing_code_<variable>``.
    source
        The snapshot folder or file.
    missing_columns
        Questionnaire columns absent from the export (their variables are all missing).
    extra_columns
        Export columns the questionnaire does not know (ignored).
    """

    frame: pd.DataFrame
    counts: Mapping[str, int]
    source: str
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", MappingProxyType(dict(self.counts)))

    @property
    def n(self) -> int:
        """Number of respondents (rows of :attr:`frame`)."""
        return len(self.frame)

    def summary(self) -> str:
        """A short plain-text account of the parse."""
        c = self.counts
        lines = [
            f"Survey responses from {self.source}",
            f"  raw rows               {c['raw_rows']:>8,}",
            f"  duplicates dropped     {c['duplicates_dropped']:>8,}  (tokens with several responses: {c['duplicate_tokens']:,})",
            f"  respondents            {c['respondents']:>8,}  (complete {c['complete']:,}, incomplete {c['incomplete']:,})",
            f"  linked to a person key {c['linked']:>8,}  (no token {c['no_token']:,}, token without participant {c['no_participant']:,})",
        ]
        for k, n in c.items():
            if k.startswith("dont_know_"):
                lines.append(f"  'weet niet' {k[len('dont_know_'):]:<18} {n:>6,}")
        if self.missing_columns:
            lines.append("  columns not in the export: " + ", ".join(self.missing_columns))
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The counts as a frame (``count``, ``value``)."""
        import pandas as pd

        return pd.DataFrame({"count": list(self.counts), "value": list(self.counts.values())})


def _load_fieldmap(snapshot: Path) -> dict[str, Any] | None:
    p = snapshot / "fieldmap.json"
    if p.is_file():
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "status" not in data:
            return data
    return None


def find_responses_file(snapshot: Path) -> Path:
    for name in ("responses.csv", "responses.json"):
        if (snapshot / name).is_file():
            return snapshot / name
    raise DataValidationError(
        "The snapshot has no responses file",
        file=snapshot,
        expected="responses.csv or responses.json",
        found=", ".join(sorted(p.name for p in snapshot.iterdir())) if snapshot.is_dir() else "no such folder",
        hint="point at a snapshot folder data_raw/survey/<survey id>/<timestamp>/",
    )


def parse_snapshot(
    path: str | Path,
    *,
    fieldmap: Mapping[str, Any] | None = None,
    questionnaire: Questionnaire = QUESTIONNAIRE,
    mapping: SurveyMapping | None = None,
    participants: str | Path | None = None,
    key_attribute: str = "attribute_1",
    pseudo_key: bytes | None = None,
) -> RespondentData:
    """Parse a snapshot folder (or a single export file) into one row per respondent.

    Parameters
    ----------
    path
        A snapshot folder, or an export file (then no participants are joined unless a
        ``participants.json`` lies beside it).
    fieldmap
        Resolves SGQA headings; defaults to the snapshot's ``fieldmap.json``.
    questionnaire
        The questionnaire that defines the variables.
    mapping
        An existing survey's own columns and answer codes (:class:`survey.mapping.SurveyMapping`).
    participants, key_attribute, pseudo_key
        The participants file (default: the snapshot's ``participants.json``; a GUI CSV export works
        too), the attribute holding the person key, and the key for pseudonymising raw INSZ in it
        (see :func:`read_participants`).

    Returns
    -------
    RespondentData
        ``frame`` has ``response_id``, ``token``, ``person_key``, ``complete``, ``submitdate``,
        ``startdate``, ``datestamp``, ``lastpage``, ``startlanguage``, then one column per variable:
        outcomes as ordered categoricals 1..5 with ``<name>_dont_know`` flags, yes/no and
        multiple-choice answers as nullable booleans, lists as categoricals of the answer codes,
        numbers as floats, free text as strings.
    """
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        snapshot = p
        if (p / "manifest.json").is_file():
            from survey.snapshot import verify_snapshot

            verify_snapshot(p)
        resp_file = find_responses_file(p)
    else:
        snapshot = p.parent
        resp_file = p
    if fieldmap is None:
        fieldmap = _load_fieldmap(snapshot)
    raw = read_responses(resp_file, fieldmap)
    if mapping is not None and questionnaire is QUESTIONNAIRE:
        questionnaire = mapping.questionnaire()  # the study's own outcomes, if it has them
    if mapping is not None and not mapping.empty:
        raw = mapping.apply(raw, resp_file)
    raw, masked = _mask_insz_columns(raw)
    counts: dict[str, int] = {"raw_rows": len(raw)}
    if masked:
        counts["insz_masked"] = masked
    _check_fixed_columns(raw, questionnaire, resp_file)
    kept = _latest_per_token(raw, counts)

    # participants
    part_file = Path(participants) if participants is not None else snapshot / "participants.json"
    person_key = _person_keys(kept, part_file, key_attribute, pseudo_key, counts)
    counts["respondents"] = len(kept)
    counts["complete"] = int(kept["complete"].sum())
    counts["incomplete"] = int((~kept["complete"]).sum())

    out = _fixed_variables(kept, person_key)
    missing_cols: list[str] = []
    for q in questionnaire.questions:
        for col in q.columns():
            if col not in kept.columns:
                missing_cols.append(col)
        _convert_question(q, kept, out, counts, resp_file)
    known = set(FIXED_COLUMNS) | {"complete"} | set(questionnaire.answer_columns())
    extra = tuple(c for c in raw.columns if c not in known)
    frame = pd.DataFrame(out)
    return RespondentData(
        frame=frame,
        counts=counts,
        source=str(p),
        missing_columns=tuple(missing_cols),
        extra_columns=extra,
    )


def _check_fixed_columns(raw: pd.DataFrame, questionnaire: Questionnaire, resp_file: Path) -> None:
    """Check the export's columns and response ids; add the missing fixed columns (empty), ``complete``, typed ids and tokens.

    Raises
    ------
    DataValidationError
        None of the questionnaire's columns, no id column, an id that is not a number or occurs twice.
    """
    import numpy as np
    import pandas as pd

    expected_cols = questionnaire.answer_columns()
    if (len(raw.columns) > len(FIXED_COLUMNS) or len(raw)) and not any(c in raw.columns for c in expected_cols):
        raise DataValidationError(
            "The export has none of the questionnaire's columns",
            file=resp_file,
            expected="answer columns such as " + ", ".join(expected_cols[:4]),
            found="columns " + ", ".join(str(c) for c in raw.columns[:10]) + (" ..." if len(raw.columns) > 10 else ""),
            hint="this is the export of another survey, or one with full or abbreviated headings; "
            "export with code headings (question codes) from the study's survey",
        )

    for c in FIXED_COLUMNS:
        if c not in raw.columns:
            if c in ("id",):
                raise DataValidationError(
                    "The export has no response id column", file=resp_file, column="id", hint="export all columns"
                )
            raw[c] = None
    ids = pd.to_numeric(raw["id"], errors="coerce")
    if ids.isna().any():
        pos = int(np.flatnonzero(ids.isna().to_numpy())[0])
        raise DataValidationError(
            "A response id is not a number", file=resp_file, row=pos + 1, column="id", found=repr(raw["id"].iloc[pos])
        )
    raw["id"] = ids.astype("int64")
    if raw["id"].duplicated().any():
        dup = int(raw.loc[raw["id"].duplicated(), "id"].iloc[0])
        raise DataValidationError(
            "A response id occurs twice in the export",
            file=resp_file,
            column="id",
            found=str(dup),
            hint="the snapshot is corrupt; fetch again",
        )
    raw["complete"] = raw["submitdate"].map(_blank_to_none).notna()
    raw["token"] = raw["token"].map(_blank_to_none)


def _latest_per_token(raw: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """The duplicate rule: the latest complete response per token, else the latest incomplete (counted in ``counts``)."""
    import pandas as pd

    sub = raw["submitdate"].map(_blank_to_none)
    order_key = pd.DataFrame(
        {
            "complete": raw["complete"].astype(int),
            "when": pd.to_datetime(sub.where(sub.notna(), raw["datestamp"].map(_blank_to_none)), errors="coerce"),
            "id": raw["id"],
        }
    )
    has_token = raw["token"].notna()
    counts["no_token"] = int((~has_token).sum())
    tok = raw.loc[has_token]
    keys = order_key.loc[has_token].assign(token=tok["token"])
    keys = keys.sort_values(["token", "complete", "when", "id"], na_position="first", kind="stable")
    keep_idx = keys.drop_duplicates("token", keep="last").index
    dup_counts = tok["token"].value_counts()
    counts["duplicate_tokens"] = int((dup_counts > 1).sum())
    counts["duplicates_dropped"] = int(len(tok) - len(keep_idx))
    return raw.loc[raw.index.isin(keep_idx) | ~has_token].sort_values("id", kind="stable").reset_index(drop=True)


def _person_keys(kept: pd.DataFrame, part_file: Path, key_attribute: str, pseudo_key: bytes | None, counts: dict[str, int]) -> pd.Series:
    """Each respondent's person key, from the participants file through the token (counted in ``counts``)."""
    if part_file.is_file():
        parts = read_participants(part_file, key_attribute=key_attribute, pseudo_key=pseudo_key)
        key_of = dict(zip(parts["token"].dropna().astype(str), parts.loc[parts["token"].notna(), "attribute_1"].astype(object), strict=True))
        counts["participants"] = len(parts)
    else:
        key_of = {}
        counts["participants"] = 0
    person_key = kept["token"].map(lambda t: key_of.get(t) if t is not None else None)
    counts["no_participant"] = int((kept["token"].notna() & person_key.isna()).sum())
    counts["linked"] = int(person_key.notna().sum())
    return person_key


def _fixed_variables(kept: pd.DataFrame, person_key: pd.Series) -> dict[str, Any]:
    """The respondent frame's first columns: response id, token, person key, completion, dates, last page, language."""
    import pandas as pd

    return {
        "response_id": kept["id"].astype("int64"),
        "token": kept["token"].astype("string"),
        "person_key": person_key.astype("string"),
        "complete": kept["complete"].astype(bool),
        "submitdate": pd.to_datetime(kept["submitdate"].map(_blank_to_none), errors="coerce"),
        "startdate": pd.to_datetime(kept["startdate"].map(_blank_to_none), errors="coerce"),
        "datestamp": pd.to_datetime(kept["datestamp"].map(_blank_to_none), errors="coerce"),
        "lastpage": pd.to_numeric(kept["lastpage"], errors="coerce").astype("Int64"),
        "startlanguage": kept["startlanguage"].astype("string"),
    }


def _mask_insz_columns(raw: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Every text column of the export with INSZ-like numbers masked (free text, ignored columns too)."""
    from survey.mapping import mask_insz

    total = 0
    out = raw
    for c in raw.columns:
        if c in ("id", "token"):
            continue
        masked, n = mask_insz(raw[c])
        if n:
            out = out.assign(**{c: masked}) if out is not raw else raw.assign(**{c: masked})
            total += n
    return out, total


def _column(kept: pd.DataFrame, col: str) -> pd.Series:
    import pandas as pd

    if col in kept.columns:
        return kept[col]
    return pd.Series([None] * len(kept), index=kept.index, dtype=object)


def _bad_code(q: Question, col: str, s: pd.Series, ok: Any, source: Path, allowed: list[str]) -> None:
    import numpy as np

    bad = ~np.asarray(ok, dtype=bool)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataValidationError(
            f"Unknown answer code for {q.code}",
            file=source,
            row=pos + 1,
            column=col,
            expected="one of " + ", ".join(allowed) + " (or empty)",
            found=f"{s.iloc[pos]!r} ({int(bad.sum())} rows)",
            hint="the export does not match the questionnaire; check the survey version",
        )


def _convert_question(q: Question, kept: pd.DataFrame, out: dict[str, Any], counts: dict[str, int], source: Path) -> None:
    import numpy as np
    import pandas as pd

    if q.qtype == "F":
        codes = [a.code for a in q.answers]
        valid = [a.code for a in q.answers if not a.missing]
        for sq, name in zip(q.subquestions, q.sub_names, strict=True):
            col = f"{q.code}[{sq.code}]"
            s = _column(kept, col).map(_blank_to_none)
            _bad_code(q, col, s, s.isna() | s.isin(codes), source, codes)
            nm = name
            dk = (s == DONT_KNOW).fillna(False).astype(bool)
            vals = s.where(s.isin(valid)).map(lambda v: int(v) if v is not None and v == v else None)
            cat = pd.Categorical(vals, categories=[int(c) for c in valid], ordered=True)
            out[nm] = pd.Series(cat, index=kept.index)
            out[f"{nm}_dont_know"] = dk
            counts[f"dont_know_{nm}"] = int(dk.sum())
    elif q.qtype == "M":
        for sq, name in zip(q.subquestions, q.sub_names, strict=True):
            col = f"{q.code}[{sq.code}]"
            s = _column(kept, col)
            _bad_code(q, col, s, s.isna() | s.isin(["Y", ""]), source, ["Y", '""'])
            out[name] = pd.array([None if v is None else v == "Y" for v in s], dtype="boolean")
    elif q.qtype == "Y":
        s = _column(kept, q.code).map(_blank_to_none)
        _bad_code(q, q.code, s, s.isna() | s.isin(["Y", "N"]), source, ["Y", "N"])
        out[q.name] = pd.array([None if v is None else v == "Y" for v in s], dtype="boolean")
    elif q.qtype == "L":
        codes = [a.code for a in q.answers] + (["-oth-"] if q.other else [])
        valid = [a.code for a in q.answers if not a.missing] + (["-oth-"] if q.other else [])
        s = _column(kept, q.code).map(_blank_to_none)
        _bad_code(q, q.code, s, s.isna() | s.isin(codes), source, codes)
        n_missing = int((s.notna() & ~s.isin(valid)).sum())
        if len(valid) != len(codes):
            counts[f"missing_code_{q.name}"] = n_missing
        out[q.name] = pd.Series(pd.Categorical(s.where(s.isin(valid)), categories=valid), index=kept.index)
        if q.other:
            out[f"{q.name}_other"] = _column(kept, f"{q.code}[other]").astype("string")
    elif q.qtype == "N":
        s = _column(kept, q.code).map(_blank_to_none)
        num = pd.to_numeric(s, errors="coerce")
        bad = (num.isna() & s.notna()).to_numpy()
        _bad_code(q, q.code, s, ~bad, source, ["a number"])
        out[q.name] = num.astype(float).to_numpy(dtype=float, na_value=np.nan)
    else:  # T and other free text
        out[q.name] = _column(kept, q.code).astype("string")
