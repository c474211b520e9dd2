"""The codebook for reading personal development plans (POPs), as code.

Like the questionnaire (:mod:`survey.questionnaire`), the codebook is data: every code has a name
(the column in the coding sheets and in the tables), Dutch and English labels, a definition, decision
rules, examples and its allowed values.  Coding sheets take their drop-downs from it, ingest checks
every cell against it, and the report takes its labels from it.

Codes
-----
``goal_talent``, ``goal_balance``, ``goal_reorientation``
    The three career goals behind the training (multi-label: each is ``ja``/``nee``).
``training_recommended``
    The POP recommends a concrete training or course (``ja``/``nee``).
``reason_derivable``
    Why the worker wants to follow the recommended training can be derived from the POP
    (``ja``/``nee``; ``nvt`` when no training is recommended).
``attest_match``
    The training to be followed according to the POP against the training on the POP-attest
    (``match`` / ``mismatch`` / ``onbepaald``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

__all__ = ["CODEBOOK", "CODES", "GOALS", "Code", "Codebook", "Value"]


@dataclass(frozen=True)
class Value:
    """One allowed value of a code."""

    code: str
    label_nl: str
    label_en: str


@dataclass(frozen=True)
class Code:
    """One code of the codebook.

    Attributes
    ----------
    name
        Column name in coding sheets and tables.
    label_nl, label_en
        Short labels for sheets and reports.
    definition
        What the code records (English).
    rules
        Decision rules, in the order a coder applies them.
    examples
        ``(text fragment, value)`` pairs.
    values
        The allowed values.
    applies_when
        ``None`` (always), or ``(code, value)``: the code is only coded when that other code has that
        value; otherwise its value must be ``nvt``.
    """

    name: str
    label_nl: str
    label_en: str
    definition: str
    rules: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]
    values: tuple[Value, ...]
    applies_when: tuple[str, str] | None = None

    @property
    def allowed(self) -> tuple[str, ...]:
        """The allowed value codes."""
        return tuple(v.code for v in self.values)

    def label(self, lang: str = "nl") -> str:
        """The label in ``nl`` or ``en``."""
        return self.label_en if lang == "en" else self.label_nl

    def value_label(self, value: str, lang: str = "nl") -> str:
        """The label of one value."""
        for v in self.values:
            if v.code == value:
                return v.label_en if lang == "en" else v.label_nl
        raise KeyError(value)


_YES_NO = (Value("ja", "ja", "yes"), Value("nee", "nee", "no"))
_YES_NO_NA = (*_YES_NO, Value("nvt", "niet van toepassing", "not applicable"))


@dataclass(frozen=True)
class Codebook:
    """An ordered set of codes."""

    codes: tuple[Code, ...]
    version: str = "1"

    def __getitem__(self, name: str) -> Code:
        for c in self.codes:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        """The code names in sheet order."""
        return tuple(c.name for c in self.codes)

    def to_frame(self) -> pd.DataFrame:
        """One row per code and value (for the documentation and the sheets' codebook tab)."""
        rows = []
        for c in self.codes:
            for v in c.values:
                rows.append(
                    {
                        "code": c.name,
                        "label_nl": c.label_nl,
                        "label_en": c.label_en,
                        "value": v.code,
                        "value_nl": v.label_nl,
                        "value_en": v.label_en,
                        "definition": c.definition,
                        "rules": " | ".join(c.rules),
                        "applies_when": "" if c.applies_when is None else f"{c.applies_when[0]} = {c.applies_when[1]}",
                    }
                )
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """A printable codebook."""
        lines = [f"POP codebook (version {self.version})"]
        for c in self.codes:
            lines.append(f"  {c.name}: {c.label_en} [{'/'.join(c.allowed)}]")
            lines.append(f"      {c.definition}")
            lines.extend(f"      - {r}" for r in c.rules)
        return "\n".join(lines)

    def check_consistency(self, codes: Mapping[str, str]) -> str | None:
        """The first violated dependency of one coded POP, as a message, or None."""
        for c in self.codes:
            if c.applies_when is None or c.name not in codes:
                continue
            dep, val = c.applies_when
            if dep not in codes:
                continue
            if codes[dep] != val and codes[c.name] != "nvt":
                return f"{c.name} must be 'nvt' when {dep} is {codes[dep]!r} (found {codes[c.name]!r})"
            if codes[dep] == val and codes[c.name] == "nvt":
                return f"{c.name} cannot be 'nvt' when {dep} is {val!r}"
        return None


GOALS: tuple[str, ...] = ("goal_talent", "goal_balance", "goal_reorientation")

CODES: tuple[Code, ...] = (
    Code(
        "goal_talent",
        "Loopbaandoel: talentontwikkeling",
        "Career goal: talent development",
        "The worker wants to develop competences or talents, grow in the current job or field, or take up a larger role.",
        (
            "Code 'ja' when the POP states the wish to strengthen competences, grow in the job, specialise or move up.",
            "A training alone is not enough: the POP must state the development aim.",
            "Several goals may apply (multi-label); code each goal on its own.",
        ),
        (("Ik wil doorgroeien naar een coördinerende functie binnen mijn team.", "ja"), ("Ik zoek rust en minder uren.", "nee")),
        _YES_NO,
    ),
    Code(
        "goal_balance",
        "Loopbaandoel: werk-privébalans en werkbaar werk",
        "Career goal: work-life balance and workable work",
        "The worker wants a better balance between work and private life, less strain, or work that stays workable.",
        (
            "Code 'ja' for stress, burn-out prevention, fewer hours, less commuting, combining work and family, or keeping the job workable until retirement.",
            "Several goals may apply (multi-label).",
        ),
        (("De combinatie van werk en gezin weegt zwaar; ik wil minder pendelen.", "ja"),),
        _YES_NO,
    ),
    Code(
        "goal_reorientation",
        "Loopbaandoel: heroriëntering (nieuwe job en/of zelfstandige)",
        "Career goal: reorientation (new job and/or self-employment)",
        "The worker wants to change job, occupation or sector, or to start a self-employed activity (also in a side job).",
        (
            "Code 'ja' for a new job elsewhere, a change of occupation or sector, or starting as self-employed (hoofd- of bijberoep).",
            "A different role with the same employer is talent development, not reorientation.",
        ),
        (("Ik wil als zelfstandige in bijberoep starten als coach.", "ja"), ("Ik wil leidinggevende worden in mijn huidige bedrijf.", "nee")),
        _YES_NO,
    ),
    Code(
        "training_recommended",
        "Opleiding aangeraden in het POP",
        "Training recommended in the POP",
        "The POP's action plan recommends a training or course to follow.",
        (
            "Code 'ja' when the action plan names a training or course, even vaguely ('een opleiding in de zorg').",
            "Code 'nee' when the action plan contains only other steps (networking, applying, talking to the employer) or says a training is not needed now.",
        ),
        (("Actie: inschrijven voor de bachelor verpleegkunde.", "ja"), ("Geen opleiding nodig; ik solliciteer intern.", "nee")),
        _YES_NO,
    ),
    Code(
        "reason_derivable",
        "Reden voor de opleiding afleidbaar",
        "Reason for the training derivable",
        "From the POP it can be derived why the worker wants to follow the recommended training.",
        (
            "Code 'ja' when the POP links the training to a goal or need ('zodat ik ...', 'om ... te kunnen').",
            "Code 'nee' when a training is named without any reason.",
            "Code 'nvt' when no training is recommended.",
        ),
        (("Ik volg de lerarenopleiding zodat ik les kan geven.", "ja"), ("Opleiding: Graduaat boekhouden.", "nee")),
        _YES_NO_NA,
        applies_when=("training_recommended", "ja"),
    ),
    Code(
        "attest_match",
        "Opleiding in het POP tegenover het POP-attest",
        "Training in the POP versus the POP-attest",
        "Whether the training to be followed according to the POP is the training written on the POP-attest.",
        (
            "Code 'match' when the POP names the attest's training (spelling, abbreviations and provider may differ).",
            "Code 'mismatch' when the POP names a specific training that is not the attest's training.",
            "Code 'onbepaald' when the POP names no training, or only a vague one that cannot be compared.",
        ),
        (
            ("POP: 'bachelor verpleegkunde'; attest: 'Bachelor in de verpleegkunde'.", "match"),
            ("POP: 'Graduaat boekhouden'; attest: 'Lerarenopleiding secundair onderwijs'.", "mismatch"),
            ("POP: 'een opleiding in de zorg'.", "onbepaald"),
        ),
        (
            Value("match", "komt overeen", "matches"),
            Value("mismatch", "komt niet overeen", "does not match"),
            Value("onbepaald", "niet te bepalen", "cannot tell"),
        ),
    ),
)

#: The codebook used by sheets, ingest, agreement and estimates.
CODEBOOK = Codebook(CODES)
