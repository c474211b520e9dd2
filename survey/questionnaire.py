"""The questionnaire of the survey of opleidingscheque users, as code: one reviewed source.

Dutch is the survey language; every text has an English translation.  The LimeSurvey structure
(``.lss``) and the codebook are generated from :data:`QUESTIONNAIRE`; the parser and the reports
read the same definitions, so a code or label is written down exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DONT_KNOW",
    "LIKERT",
    "OUTCOMES",
    "QUESTIONNAIRE",
    "SURVEY_TITLE",
    "TRAINDOMAIN_TO_DOMAIN",
    "Answer",
    "Group",
    "Outcome",
    "Question",
    "Questionnaire",
    "Subquestion",
    "with_outcomes",
]

#: LimeSurvey question types used here: F array, Y yes/no, L list (radio), M multiple choice,
#: N numerical input, T long free text.
QType = Literal["F", "Y", "L", "M", "N", "T"]

#: The answer code for 'weet niet' (don't know): a valid answer that is missing for analysis.
DONT_KNOW = "99"


@dataclass(frozen=True)
class Answer:
    """One answer option: its code and labels."""

    code: str
    nl: str
    en: str
    missing: bool = False


@dataclass(frozen=True)
class Subquestion:
    """One row of an array or one option of a multiple-choice question."""

    code: str
    nl: str
    en: str


@dataclass(frozen=True)
class Question:
    """One question.

    ``name`` is the analysis name of the variable(s) it yields (for arrays and multiple choice the
    subquestion codes map to the names in ``sub_names``).
    """

    code: str
    qtype: QType
    nl: str
    en: str
    name: str
    answers: tuple[Answer, ...] = ()
    subquestions: tuple[Subquestion, ...] = ()
    sub_names: tuple[str, ...] = ()
    other: bool = False
    mandatory: bool = False
    help_nl: str = ""
    help_en: str = ""
    min: float | None = None
    max: float | None = None
    #: For scales: 'ascending' when a higher code means more agreement.
    direction: Literal["ascending", "descending", ""] = ""

    def columns(self) -> list[str]:
        """The export columns (code headings) this question produces, in export order."""
        if self.qtype in ("F", "M"):
            cols = [f"{self.code}[{s.code}]" for s in self.subquestions]
        else:
            cols = [self.code]
        if self.other:
            cols.append(f"{self.code}[other]")
        return cols


@dataclass(frozen=True)
class Group:
    """A question group (one page in the online survey)."""

    code: str
    nl: str
    en: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Questionnaire:
    """The whole questionnaire."""

    title_nl: str
    title_en: str
    language: str
    additional_languages: tuple[str, ...]
    groups: tuple[Group, ...]
    welcome_nl: str = ""
    welcome_en: str = ""
    attribute_descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def questions(self) -> list[Question]:
        """All questions in survey order."""
        return [q for g in self.groups for q in g.questions]

    def question(self, code: str) -> Question:
        """The question with ``code``."""
        for q in self.questions:
            if q.code == code:
                return q
        raise KeyError(code)

    def answer_columns(self) -> list[str]:
        """All answer columns (code headings) in export order."""
        return [c for q in self.questions for c in q.columns()]


LIKERT = (
    Answer("1", "Helemaal niet akkoord", "Strongly disagree"),
    Answer("2", "Niet akkoord", "Disagree"),
    Answer("3", "Neutraal", "Neither agree nor disagree"),
    Answer("4", "Akkoord", "Agree"),
    Answer("5", "Helemaal akkoord", "Strongly agree"),
    Answer(DONT_KNOW, "Weet niet", "Don't know", missing=True),
)

#: Survey answer codes for the training domain, and the data model's domain each stands for.
TRAINDOMAIN_TO_DOMAIN = {
    "A1": "ZORG",
    "A2": "ONDERWIJS",
    "A3": "ICT",
    "A4": "TALEN",
    "A5": "TECHNIEK",
    "A6": "MANAGEMENT",
    "A7": "TRANSPORT",
    "-oth-": "OVERIG",
}


@dataclass(frozen=True)
class Outcome:
    """A self-reported effect: popeval's four (:data:`OUTCOMES`) or one a study defines.

    ``column`` is its code heading in popeval's export (``EFFECT[SQ001]``); ``direction`` says
    whether the survey's scale runs ``ascending`` (5 = agree most) or ``descending``.
    """

    name: str
    column: str
    nl: str
    en: str
    direction: str = "ascending"


OUTCOMES = (
    Outcome("stronger", "EFFECT[SQ001]", "Professioneel sterker", "Professionally stronger"),
    Outcome("job_better", "EFFECT[SQ002]", "Job beter uitvoeren", "Doing the job better"),
    Outcome("promotion", "EFFECT[SQ003]", "Meer promotiekansen", "Better promotion chances"),
    Outcome("satisfaction", "EFFECT[SQ004]", "Tevreden over de opleiding", "Satisfied with the training"),
)

SURVEY_TITLE = "Bevraging gebruikers opleidingscheques"

QUESTIONNAIRE = Questionnaire(
    title_nl=SURVEY_TITLE,
    title_en="Survey of training-voucher users",
    language="nl",
    additional_languages=("en",),
    welcome_nl=(
        "Bedankt om mee te werken aan deze bevraging van het Departement Werk en Sociale Economie en "
        "VDAB over uw opleiding met opleidingscheques. Invullen duurt ongeveer tien minuten."
    ),
    welcome_en=(
        "Thank you for taking part in this survey by the Department of Work and Social Economy and "
        "VDAB about your training paid with training vouchers. It takes about ten minutes."
    ),
    attribute_descriptions={"attribute_1": "pseudo_id"},
    groups=(
        Group(
            "G1",
            "Uw opleiding",
            "Your training",
            (
                Question(
                    "INCENTIVE",
                    "M",
                    "Welke opleidingsincentives gebruikte u voor deze opleiding?",
                    "Which training incentives did you use for this training?",
                    name="incentive",
                    subquestions=(
                        Subquestion("SQ001", "Opleidingscheques", "Training vouchers"),
                        Subquestion("SQ002", "Vlaams opleidingsverlof", "Flemish training leave"),
                        Subquestion("SQ003", "Aanmoedigingspremie opleidingskrediet", "Incentive premium for training credit"),
                        Subquestion("SQ004", "Geen andere", "No other"),
                    ),
                    sub_names=("inc_oc", "inc_vov", "inc_vapok", "inc_none"),
                ),
                Question(
                    "TRAINDOMAIN",
                    "L",
                    "In welk domein lag de opleiding?",
                    "In which field was the training?",
                    name="train_domain",
                    answers=(
                        Answer("A1", "Zorg en welzijn", "Health care and welfare"),
                        Answer("A2", "Onderwijs en pedagogie", "Education and pedagogy"),
                        Answer("A3", "ICT en digitale vaardigheden", "ICT and digital skills"),
                        Answer("A4", "Talen", "Languages"),
                        Answer("A5", "Techniek en industrie", "Engineering and industry"),
                        Answer("A6", "Management en administratie", "Management and administration"),
                        Answer("A7", "Transport en logistiek", "Transport and logistics"),
                    ),
                    other=True,
                    mandatory=True,
                ),
                Question(
                    "HOURS",
                    "N",
                    "Hoeveel uren duurde de opleiding (lesuren)?",
                    "How many hours did the training take (contact hours)?",
                    name="hours",
                    min=1,
                    max=2000,
                ),
            ),
        ),
        Group(
            "G2",
            "Loopbaanbegeleiding",
            "Career guidance",
            (
                Question(
                    "GUIDANCE",
                    "Y",
                    "Volgde u loopbaanbegeleiding met loopbaancheques voor u aan deze opleiding begon?",
                    "Did you follow career guidance paid with career vouchers before starting this training?",
                    name="guidance",
                    mandatory=True,
                ),
                Question(
                    "POPUSED",
                    "Y",
                    "Stond deze opleiding in uw persoonlijk ontwikkelingsplan (POP), met een POP-attest?",
                    "Was this training part of your personal development plan (POP), with a POP certificate?",
                    name="pop_reported",
                    mandatory=True,
                ),
            ),
        ),
        Group(
            "G3",
            "Wat heeft de opleiding u opgeleverd?",
            "What did the training bring you?",
            (
                Question(
                    "EFFECT",
                    "F",
                    "In welke mate bent u het eens met de volgende uitspraken over de opleiding?",
                    "To what extent do you agree with the following statements about the training?",
                    name="effect",
                    answers=LIKERT,
                    subquestions=tuple(
                        Subquestion(sq, nl, en)
                        for sq, nl, en in (
                            ("SQ001", "Ik sta professioneel sterker", "I am professionally stronger"),
                            ("SQ002", "Ik kan mijn job beter uitvoeren", "I can do my job better"),
                            ("SQ003", "Ik heb meer promotiekansen", "I have better promotion chances"),
                            ("SQ004", "Ik ben tevreden over de opleiding", "I am satisfied with the training"),
                        )
                    ),
                    sub_names=tuple(o.name for o in OUTCOMES),
                    direction="ascending",
                ),
            ),
        ),
        Group(
            "G4",
            "Over u",
            "About you",
            (
                Question(
                    "GENDER",
                    "L",
                    "Wat is uw geslacht?",
                    "What is your sex?",
                    name="sex_reported",
                    answers=(
                        Answer("M", "Man", "Man"),
                        Answer("V", "Vrouw", "Woman"),
                        Answer("X", "Anders of zeg ik liever niet", "Other or prefer not to say", missing=True),
                    ),
                ),
                Question(
                    "BIRTHYEAR",
                    "N",
                    "In welk jaar bent u geboren?",
                    "In which year were you born?",
                    name="birth_year_reported",
                    min=1940,
                    max=2010,
                ),
                Question(
                    "EDUC",
                    "L",
                    "Wat is uw hoogst behaalde diploma?",
                    "What is your highest qualification?",
                    name="educ_reported",
                    answers=(
                        Answer("L", "Ten hoogste lager secundair onderwijs", "At most lower secondary education"),
                        Answer("M", "Hoger secundair onderwijs", "Upper secondary education"),
                        Answer("H", "Hoger onderwijs (graduaat, bachelor, master)", "Higher education"),
                    ),
                ),
                Question(
                    "REMARKS",
                    "T",
                    "<p>Heeft u nog <strong>opmerkingen</strong> over de opleiding of over deze bevraging?</p>",
                    "<p>Do you have any other <strong>remarks</strong> about the training or this survey?</p>",
                    name="remarks",
                ),
            ),
        ),
    ),
)


def with_outcomes(outcomes: tuple[Outcome, ...], questionnaire: Questionnaire | None = None) -> Questionnaire:
    """The questionnaire whose outcome question (``EFFECT``) asks exactly ``outcomes``, in that order.

    Each outcome is a row of the five-point agreement scale (with 'weet niet'); its subquestion code
    is taken from its ``column`` (``EFFECT[SQ101]`` -> ``SQ101``).  Used for a study whose existing
    survey has other outcomes than popeval's four.
    """
    import dataclasses

    base = QUESTIONNAIRE if questionnaire is None else questionnaire
    groups = []
    for g in base.groups:
        qs = []
        for q in g.questions:
            if q.code == "EFFECT":
                subs = tuple(Subquestion(o.column[len("EFFECT[") : -1], o.nl, o.en) for o in outcomes)
                q = dataclasses.replace(q, subquestions=subs, sub_names=tuple(o.name for o in outcomes))
            qs.append(q)
        groups.append(dataclasses.replace(g, questions=tuple(qs)))
    return dataclasses.replace(base, groups=tuple(groups))
