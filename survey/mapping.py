"""Read an existing survey with its own codes: the questionnaire mapping and INSZ masking.

A survey that already runs on the agency's LimeSurvey has its own question codes and answer codes.
:class:`SurveyMapping` says, per popeval variable (:func:`variable_headings`), which column of the
export holds it and how its answer codes translate into popeval's (``[survey.columns]`` and
``[survey.answers.<variable>]`` in the study TOML)::

    [survey.columns]
    stronger = "Q5_SQ001"          # Q5_SQ001 and Q5[SQ001] are the same column
    pop_reported = "Q3"

    [survey.answers.stronger]      # the survey's code = popeval's code ("99" = weet niet)
    A1 = "1"
    A6 = "99"

:meth:`SurveyMapping.apply` turns the raw export into popeval's code headings and codes before the
parser reads it (vectorised, per column).  A mapped column that is missing, or an answer code that is
not mapped, is an error naming the file, the column, the codes with their counts and a hint.

:func:`mask_insz` replaces INSZ-like numbers in free text (and in every other text column of the
export) by ``[INSZ]`` before anything is parsed or cached; the values are never shown.
:func:`skeleton` writes a commented mapping from a survey's ``.lss`` or fieldmap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import ConfigError, DataValidationError
from survey.questionnaire import OUTCOMES, QUESTIONNAIRE, Outcome, Questionnaire, with_outcomes

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["SurveyMapping", "mask_insz", "normalise_heading", "participants_csv", "skeleton", "survey_mapping_from_toml", "variable_headings"]

_DEFAULT_NAMES = tuple(o.name for o in OUTCOMES)
#: Names an outcome of a study's own may not take: the analysis file's other columns.
_RESERVED = ("pop", "educ", "age_band", "sex", "sector", "company_size", "province", "statute", "guidance", "had_guidance",
             "person_key", "response_id", "token", "complete", "submitdate", "startdate", "datestamp", "lastpage", "startlanguage",
             "inside_support", "role", "match_set", "slot")
_INSZ_CANDIDATE = re.compile(r"(?<!\d)\d{2}[.\s]?\d{2}[.\s]?\d{2}[-.\s]?\d{3}[.\s]?\d{2}(?!\d)")


def variable_headings(questionnaire: Questionnaire = QUESTIONNAIRE) -> dict[str, str]:
    """popeval variable -> its code heading in popeval's own export (``stronger`` -> ``EFFECT[SQ001]``)."""
    out: dict[str, str] = {}
    for q in questionnaire.questions:
        if q.qtype in ("F", "M"):
            for sq, name in zip(q.subquestions, q.sub_names, strict=True):
                out[name] = f"{q.code}[{sq.code}]"
        else:
            out[q.name] = q.code
        if q.other:
            out[f"{q.name}_other"] = f"{q.code}[other]"
    return out


def normalise_heading(h: str) -> str:
    """``Q5_SQ001`` and ``Q5[SQ001]`` are one column: both become ``Q5[SQ001]``."""
    m = re.fullmatch(r"(.+?)_(SQ\d+|other|comment)", h)
    return f"{m.group(1)}[{m.group(2)}]" if m else h


@dataclass(frozen=True)
class SurveyMapping:
    """An existing survey's columns and answer codes in popeval's terms.

    Attributes
    ----------
    columns
        popeval variable -> the survey's column heading (either ``Q5_SQ001`` or ``Q5[SQ001]``).
    answers
        popeval variable -> {the survey's answer code: popeval's answer code}.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    answers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    outcomes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No mapping: the export is in popeval's own codes."""
        return not self.columns and not self.answers and not self.outcomes

    @property
    def custom_outcomes(self) -> bool:
        """Whether ``[survey.outcomes]`` defines an outcome of its own (then its tables are the outcomes)."""
        return any(name not in _DEFAULT_NAMES for name in self.outcomes)

    def outcome_list(self) -> tuple[Outcome, ...]:
        """The study's outcomes, in order: popeval's four, or the ``[survey.outcomes]`` tables when one is new.

        A default outcome keeps its column in popeval's export (``EFFECT[SQ001]``); a new one gets
        ``EFFECT[SQ101]``, ``EFFECT[SQ102]``, ... in the order written.  Labels and direction come from
        ``[survey.outcomes.<name>]`` (a default outcome keeps popeval's labels where none is given).
        """
        defaults = {o.name: o for o in OUTCOMES}
        names = list(self.outcomes) if self.custom_outcomes else list(defaults)
        out: list[Outcome] = []
        k = 0
        for name in names:
            given = self.outcomes.get(name, {})
            base = defaults.get(name)
            if base is None:
                k += 1
                column = f"EFFECT[SQ{100 + k}]"
            else:
                column = base.column
            out.append(Outcome(name, column, given.get("nl", base.nl if base else name), given.get("en", base.en if base else name),
                               given.get("direction", "ascending")))
        return tuple(out)

    def questionnaire(self) -> Questionnaire:
        """popeval's questionnaire with this study's outcome question."""
        return with_outcomes(self.outcome_list()) if self.custom_outcomes else QUESTIONNAIRE

    def outcome_table(self) -> list[dict[str, str]]:
        """Each outcome's name, survey column, Dutch and English label and scale direction (for the bundle)."""
        return [{"name": o.name, "column": self.columns.get(o.name, o.column), "nl": o.nl, "en": o.en, "direction": o.direction}
                for o in self.outcome_list()]

    def check_header(self, header: list[str], source: str | Path) -> dict[str, str]:
        """The export column of each mapped variable; a missing one is an error (before any parsing)."""
        by_norm = {normalise_heading(h): h for h in header}
        found: dict[str, str] = {}
        missing: list[tuple[str, str]] = []
        for var, col in self.columns.items():
            h = by_norm.get(normalise_heading(col))
            if h is None:
                missing.append((var, col))
            else:
                found[var] = h
        if missing:
            raise DataValidationError(
                f"Mapped survey column{'s' if len(missing) > 1 else ''} missing from the export",
                file=source,
                row=0,
                column=missing[0][1],
                expected="the columns of [survey.columns]: " + ", ".join(f"{v} <- {c}" for v, c in missing),
                found=f"{len(header)} columns: " + ", ".join(header[:40]) + (" ..." if len(header) > 40 else ""),
                hint="fix [survey.columns] (Q5_SQ001 and Q5[SQ001] both work) or export the survey with code headings; "
                "`popeval init --lss survey.lss` writes a mapping skeleton",
            )
        return found

    def apply(self, raw: pd.DataFrame, source: str | Path) -> pd.DataFrame:
        """The export with popeval's code headings and answer codes (a new frame)."""
        headings = variable_headings(self.questionnaire())
        found = self.check_header([str(c) for c in raw.columns], source)
        out = raw.copy()
        renames: dict[str, str] = {}
        for var, col in found.items():
            target = headings[var]
            renames[col] = target
        # a popeval heading that the survey uses for something else is set aside
        clash = {c: f"{c} (unmapped)" for c in out.columns if c in renames.values() and c not in renames}
        out = out.rename(columns={**clash, **renames})
        for var, table in self.answers.items():
            target = headings[var]
            if target not in out.columns:
                continue
            s = out[target]
            known = s.isna() | s.isin(list(table))
            if not bool(known.all()):
                bad = s[~known]
                counts = bad.value_counts()
                first = int(known.to_numpy().argmin()) + 1
                shown = ", ".join(f"{v!r} ({n} row{'s' if n != 1 else ''})" for v, n in counts.head(20).items())
                raise DataValidationError(
                    f"Unmapped answer codes for {var}",
                    file=source,
                    row=first,
                    column=found.get(var, target),
                    expected=f"codes of [survey.answers.{var}]: " + ", ".join(table),
                    found=f"{len(counts)} code{'s' if len(counts) != 1 else ''}: {shown}",
                    hint=f'add them to [survey.answers.{var}], e.g. {counts.index[0]} = "..." (popeval\'s codes: see survey/questionnaire.py)',
                )
            out[target] = s.map(lambda v, t=table: t.get(v) if isinstance(v, str) else v)
        # a descending scale (1 = agree most) is turned around so that a higher code means more agreement
        for o in self.outcome_list():
            target = headings[o.name]
            if o.direction == "descending" and target in out.columns:
                flip = {str(k): str(6 - k) for k in range(1, 6)}
                out[target] = out[target].map(lambda v, f=flip: f.get(v, v) if isinstance(v, str) else v)
        return out


def _outcomes_from_toml(outcomes: Any, source: Path | None) -> dict[str, dict[str, str]]:
    if not isinstance(outcomes, Mapping):
        raise ConfigError("Invalid setting in the study configuration", file=source, param="survey.outcomes",
                          expected="tables [survey.outcomes.<name>]", found=repr(outcomes), hint='e.g. [survey.outcomes.stronger] nl = "Sterker op de arbeidsmarkt"')
    others = set(variable_headings()) - set(_DEFAULT_NAMES)
    outs: dict[str, dict[str, str]] = {}
    for name, given in outcomes.items():
        if not isinstance(given, Mapping) or any(k not in ("nl", "en", "direction") for k in given) or not all(isinstance(v, str) for v in given.values()):
            raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.outcomes.{name}",
                              expected='a table with nl = "...", en = "...", direction = "ascending" | "descending"', found=repr(given),
                              hint='e.g. [survey.outcomes.stronger] nl = "Sterker op de arbeidsmarkt"')
        if name not in _DEFAULT_NAMES:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name) or name in others or name in _RESERVED or name.startswith("w_") or name.endswith("_dont_know"):
                raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.outcomes.{name}",
                                  expected="an outcome name of lower-case letters, digits and _ (at most 31), not the name of another variable "
                                  "and not ending in _dont_know; popeval's own outcomes are " + ", ".join(_DEFAULT_NAMES),
                                  found=name, hint="choose another name, e.g. career_chances")
            missing = [k for k in ("nl", "en") if not given.get(k, "").strip()]
            if missing:
                raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.outcomes.{name}.{missing[0]}",
                                  expected="a Dutch (nl) and an English (en) label for an outcome of the study's own", found="no " + missing[0],
                                  hint=f'e.g. [survey.outcomes.{name}] nl = "..." en = "..."')
        if given.get("direction", "ascending") not in ("ascending", "descending"):
            raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.outcomes.{name}.direction",
                              expected="ascending (5 = agree most) or descending (1 = agree most)", found=repr(given["direction"]),
                              hint="descending scales are turned around before the analysis")
        outs[name] = dict(given)
    return outs


def survey_mapping_from_toml(columns: Any, answers: Any, source: Path | None = None, outcomes: Any = None) -> SurveyMapping:
    """Build and check a :class:`SurveyMapping` from ``[survey.columns]``, ``[survey.answers]`` and ``[survey.outcomes]``.

    ``[survey.outcomes.<name>]`` gives an outcome's labels (``nl``, ``en``) and scale ``direction``.
    When one of these tables names an outcome that is not one of popeval's four, the study's outcomes
    are exactly the tables written, in that order; each needs a column in ``[survey.columns]``.
    """
    outs = _outcomes_from_toml(outcomes or {}, source)
    probe = SurveyMapping(outcomes=outs)
    headings = variable_headings(probe.questionnaire())
    if not isinstance(columns, Mapping) or not all(isinstance(v, str) for v in columns.values()):
        raise ConfigError("Invalid setting in the study configuration", file=source, param="survey.columns",
                          expected='a table of popeval variable = "survey column"', found=repr(columns), hint='e.g. stronger = "Q5_SQ001"')
    for var in columns:
        if var not in headings:
            raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.columns.{var}",
                              expected="a survey variable of popeval: " + ", ".join(headings), found=var,
                              hint="check the spelling; an outcome of the study's own is defined in [survey.outcomes." + var + "] first")
    if probe.custom_outcomes:
        unmapped = [o.name for o in probe.outcome_list() if o.name not in columns]
        if unmapped:
            raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.columns.{unmapped[0]}",
                              expected="a survey column for every outcome of [survey.outcomes]", found=f"no column for {', '.join(unmapped)}",
                              hint=f'add {unmapped[0]} = "Q5_SQ001" (the survey\'s column) to [survey.columns]')
    if not isinstance(answers, Mapping):
        raise ConfigError("Invalid setting in the study configuration", file=source, param="survey.answers",
                          expected="tables [survey.answers.<variable>]", found=repr(answers), hint='e.g. [survey.answers.stronger] A1 = "1"')
    out: dict[str, dict[str, str]] = {}
    for var, table in answers.items():
        if var not in headings:
            raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.answers.{var}",
                              expected="a survey variable of popeval: " + ", ".join(headings), found=var, hint="check the spelling")
        if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in table.values()):
            raise ConfigError("Invalid setting in the study configuration", file=source, param=f"survey.answers.{var}",
                              expected='a table of "survey code" = "popeval code"', found=repr(table), hint='e.g. A6 = "99" (weet niet)')
        out[var] = {str(k): v for k, v in table.items()}
    return SurveyMapping(columns=dict(columns), answers=out, outcomes=outs)


def mask_insz(values: pd.Series) -> tuple[pd.Series, int]:
    """Replace INSZ-like numbers inside text by ``[INSZ]``; return the masked texts and how many were masked.

    Only values holding a candidate (eleven digits, separators allowed) are looked at; a candidate is
    masked when it is a valid INSZ or bis number (:func:`survey.insz.is_valid_insz`).
    """
    import pandas as pd

    from survey.insz import looks_like_insz

    s = values.astype("string")
    has = s.str.contains(_INSZ_CANDIDATE.pattern, regex=True).fillna(False).astype(bool)
    if not bool(has.any()):
        return values, 0
    sub = s[has]
    cands = sub.str.findall(_INSZ_CANDIDATE.pattern).explode().dropna().astype(str).unique()
    valid = set(pd.Series(cands)[looks_like_insz(pd.Series(cands)).to_numpy()].tolist())
    if not valid:
        return values, 0
    pattern = re.compile("|".join(re.escape(v) for v in sorted(valid, key=len, reverse=True)))
    masked = sub.str.replace(pattern, "[INSZ]", regex=True)
    n = int((masked != sub).sum())
    out = values.astype(object).copy()
    out.loc[masked.index] = masked.astype(object)
    return out, n


def skeleton(fieldmap: Mapping[str, Any]) -> str:
    """A commented ``[survey.columns]`` / ``[survey.answers]`` skeleton from a fieldmap or an ``.lss``-derived map.

    Every column of the survey is listed as a comment with its question text when the fieldmap has it;
    popeval's variables are written with an empty value to fill in.
    """
    from survey.lsformat import code_heading_map

    headings = code_heading_map(fieldmap)
    texts: dict[str, str] = {}
    for key, entry in fieldmap.items():
        if isinstance(entry, Mapping):
            t = str(entry.get("question") or "")
            sub = str(entry.get("subquestion") or "")
            texts[headings[key]] = re.sub(r"<[^>]+>", "", (t + (" - " + sub if sub else "")))[:70]
    lines = ["# The survey's columns (code headings):"]
    for h in headings.values():
        lines.append(f"#   {h}" + (f"  {texts[h]}" if texts.get(h) else ""))
    lines += ["", "[survey.columns]", "# popeval variable = \"the survey's column\" (leave out what the survey does not ask)"]
    qmap = {q.name: q for q in QUESTIONNAIRE.questions}
    for var, h in variable_headings().items():
        guess = h if h in headings.values() else ""
        q = qmap.get(var)
        note = f"  # {q.nl[:60]}" if q is not None else ""
        lines.append(f'{var} = "{guess}"{note}' if guess else f'# {var} = ""{note}')
    lines += ["", "# answer codes: the survey's code = popeval's code; weet niet = \"99\"", "[survey.answers.stronger]",
              '# A1 = "1"', '# A6 = "99"', "",
              "# Outcomes: popeval's four (stronger, job_better, promotion, satisfaction), five-point agreement scales.",
              "# Per outcome a table gives its labels and the scale's direction; a table with a name of its own makes",
              "# the study's outcomes exactly the tables written, in that order (any number, e.g. three):",
              "# [survey.outcomes.career]",
              '# nl = "Betere loopbaankansen"',
              '# en = "Better career prospects"',
              '# direction = "ascending"        # or "descending" (A1 = agree most; turned around before the analysis)',
              '#   ... with its column under [survey.columns]: career = "Q5_SQ001", and its answers in [survey.answers.career]']
    return "\n".join(lines) + "\n"


def participants_csv(path: Path, key_attribute: str = "attribute_1") -> pd.DataFrame:
    """The participants CSV that LimeSurvey's GUI exports, as raw ``tid``, ``token``, ``attribute_1`` (the key).

    The separator (``,`` or ``;``) is taken from the header line; attribute headings written with their
    description (``attribute_2 <pseudo_id>``) are recognised; ``key_attribute`` names the column that
    holds the person key.
    """
    import pandas as pd

    head = path.read_bytes()[:4096].decode("utf-8-sig", errors="replace").splitlines()
    first = head[0] if head else ""
    sep = ";" if first.count(";") > first.count(",") else ","
    try:
        raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(
            "The participants CSV could not be parsed",
            file=path,
            expected="LimeSurvey's participants export (CSV with a header row)",
            found=type(exc).__name__,
            hint="export the participants again from LimeSurvey (the line itself is not shown)",
        ) from None
    raw.columns = [re.sub(r"\s*<.*>$", "", str(c)).strip() for c in raw.columns]
    missing = [c for c in ("tid", "token", key_attribute) if c not in raw.columns]
    if missing:
        raise DataValidationError(
            "The participants CSV lacks a column",
            file=path,
            row=0,
            column=missing[0],
            expected="columns tid, token and the key attribute " + key_attribute,
            found="columns " + ", ".join(raw.columns),
            hint="set survey.key_attribute to the attribute that holds the person key (e.g. attribute_2)",
        )
    return pd.DataFrame(
        {
            "tid": raw["tid"].where(raw["tid"].str.strip() != "", None),
            "token": raw["token"].where(raw["token"].str.strip() != "", None),
            "attribute_1": raw[key_attribute].where(raw[key_attribute].str.strip() != "", None),
        },
        dtype=object,
    )
