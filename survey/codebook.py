"""The codebook of the survey, generated from :data:`survey.questionnaire.QUESTIONNAIRE`.

One entry per analysis variable: its name in the respondent frame (:mod:`survey.parse`), the export
column (code heading), the question code and type, Dutch and English labels, the answer codes with
their labels, the codes that count as missing, and the scale direction.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from survey.questionnaire import OUTCOMES, QUESTIONNAIRE, Answer, Questionnaire

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Codebook", "CodebookEntry", "codebook"]

_TYPE_NAMES = {"F": "array (Likert)", "Y": "yes/no", "L": "single choice", "M": "multiple choice", "N": "number", "T": "free text"}


@dataclass(frozen=True)
class CodebookEntry:
    """One variable."""

    variable: str
    column: str
    question: str
    qtype: str
    label_nl: str
    label_en: str
    answers: tuple[Answer, ...]
    missing_codes: tuple[str, ...]
    direction: str


@dataclass(frozen=True)
class Codebook:
    """All variables of the questionnaire, in survey order."""

    entries: tuple[CodebookEntry, ...]

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, variable: str) -> CodebookEntry:
        """The entry of ``variable``."""
        for e in self.entries:
            if e.variable == variable:
                return e
        raise KeyError(variable)

    def summary(self) -> str:
        """One line per variable."""
        lines = [f"Codebook: {len(self.entries)} variables"]
        for e in self.entries:
            codes = ", ".join(a.code for a in e.answers)
            lines.append(f"  {e.variable:<22} {e.column:<20} {_TYPE_NAMES.get(e.qtype, e.qtype):<16} {codes}")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per variable and answer code (one row with empty code when there are none)."""
        import pandas as pd

        rows = []
        for e in self.entries:
            base = {
                "variable": e.variable, "column": e.column, "question": e.question, "type": e.qtype,
                "label_nl": e.label_nl, "label_en": e.label_en, "direction": e.direction,
                "missing_codes": " ".join(e.missing_codes),
            }
            if not e.answers:
                rows.append({**base, "code": None, "code_nl": None, "code_en": None, "is_missing": False})
            for a in e.answers:
                rows.append({**base, "code": a.code, "code_nl": a.nl, "code_en": a.en, "is_missing": a.code in e.missing_codes})
        return pd.DataFrame(rows)

    def to_json(self) -> str:
        """The codebook as JSON (a list of variables with their answers)."""
        return json.dumps([asdict(e) for e in self.entries], ensure_ascii=False, indent=2) + "\n"

    def to_markdown(self, lang: str = "nl") -> str:
        """A markdown table per variable group, labels in ``lang`` (``nl`` or ``en``)."""
        if lang not in ("nl", "en"):
            from survey.errors import ConfigError

            raise ConfigError("Unknown language", param="lang", expected="nl or en", found=repr(lang))
        out = ["| variable | column | type | label | codes | missing | direction |", "|---|---|---|---|---|---|---|"]
        for e in self.entries:
            label = e.label_nl if lang == "nl" else e.label_en
            codes = "; ".join(f"{a.code} = {a.nl if lang == 'nl' else a.en}" for a in e.answers)
            out.append(
                f"| {e.variable} | `{e.column}` | {_TYPE_NAMES.get(e.qtype, e.qtype)} | {label.replace('|', '/')} | {codes} | "
                f"{' '.join(e.missing_codes)} | {e.direction} |"
            )
        return "\n".join(out) + "\n"


_YES_NO = (Answer("Y", "Ja", "Yes"), Answer("N", "Nee", "No"))
_CHECKED = (Answer("Y", "Aangevinkt", "Checked"), Answer("", "Niet aangevinkt", "Not checked"))


def _strip(s: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", s).strip()


def codebook(questionnaire: Questionnaire = QUESTIONNAIRE) -> Codebook:
    """The codebook of ``questionnaire``."""
    outcome_of = {o.column: o for o in OUTCOMES}
    entries: list[CodebookEntry] = []
    for q in questionnaire.questions:
        qnl, qen = _strip(q.nl), _strip(q.en)
        if q.qtype in ("F", "M"):
            answers = q.answers if q.qtype == "F" else _CHECKED
            for sq, name in zip(q.subquestions, q.sub_names, strict=True):
                col = f"{q.code}[{sq.code}]"
                o = outcome_of.get(col)
                entries.append(
                    CodebookEntry(
                        o.name if o else name, col, q.code, q.qtype, f"{qnl} [{sq.nl}]", f"{qen} [{sq.en}]", answers,
                        tuple(a.code for a in answers if a.missing), q.direction,
                    )
                )
            continue
        answers = _YES_NO if q.qtype == "Y" else q.answers
        if q.other:
            answers = (*answers, Answer("-oth-", "Andere", "Other"))
        entries.append(
            CodebookEntry(q.name, q.code, q.code, q.qtype, qnl, qen, tuple(answers), tuple(a.code for a in answers if a.missing), q.direction)
        )
        if q.other:
            entries.append(CodebookEntry(f"{q.name}_other", f"{q.code}[other]", q.code, "T", f"{qnl} [andere]", f"{qen} [other]", (), (), ""))
    return Codebook(tuple(entries))
