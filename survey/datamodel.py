"""The study data model: every input's names, codes, types and labels, in one place.

Three inputs make a study (see ``data_raw/README.md``):

* the **DWSE applications extract** (:data:`DWSE_APPLICATIONS`): one row per application for
  opleidingscheques, Vlaams opleidingsverlof (VOV) or the aanmoedigingspremie opleidingskrediet;
* the **VDAB career-guidance extract** (:data:`VDAB_TRAJECTORIES`): one row per loopbaancheque
  trajectory;
* the **survey** as LimeSurvey exports it (responses with code headings and short answers, and the
  participants table whose ``attribute_1`` carries the pseudonymous person key); its questions are
  defined in :mod:`survey.questionnaire`.

This is popeval's own schema.  Files in another shape (other names, codes, formats, key formats,
school years) are described in the study TOML and mapped onto it by
:mod:`analysis.population.mapping` (admin extracts) and :mod:`survey.mapping` (an existing survey);
for a mapped file the identifier patterns below are not enforced (identifiers need only be present
and unique) and the person key may have any format that is the same in every row.

Codes carry Dutch and English labels (:class:`Code`), so reports can be written in either language.
This module is plain data; :mod:`survey.validate` enforces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AGE_BANDS",
    "ALL_TABLES",
    "COMPANY_SIZE",
    "DWSE_APPLICATIONS",
    "EDUCATION",
    "INCENTIVES",
    "NACE_SECTIONS",
    "NACE_TO_SECTOR",
    "PROVINCES",
    "PSEUDO_KEY_PATTERN",
    "SCHOOL_YEARS",
    "SECTORS",
    "SEX",
    "STATUS",
    "STATUTES",
    "SURVEY_PARTICIPANTS",
    "TRAINING_DOMAINS",
    "VDAB_TRAJECTORIES",
    "Code",
    "Column",
    "Table",
    "age_band",
    "codes",
    "is_pseudo_key",
    "label",
]

DType = Literal["str", "int", "float", "date", "bool", "category"]

#: A pseudonymous person key: 32 lower-case hex digits (a truncated keyed HMAC-SHA256).
PSEUDO_KEY_PATTERN = r"[0-9a-f]{32}"
_PSEUDO_KEY_RE = re.compile(PSEUDO_KEY_PATTERN)


@dataclass(frozen=True)
class Code:
    """One category: its code and its Dutch and English labels."""

    code: str
    nl: str
    en: str


def _codes(*triples: tuple[str, str, str]) -> tuple[Code, ...]:
    return tuple(Code(*t) for t in triples)


INCENTIVES = _codes(
    ("OC", "Opleidingscheques", "Training vouchers"),
    ("VOV", "Vlaams opleidingsverlof", "Flemish training leave"),
    ("VAPOK", "Aanmoedigingspremie opleidingskrediet", "Incentive premium for training credit"),
)
STATUS = _codes(
    ("goedgekeurd", "Goedgekeurd", "Approved"),
    ("geweigerd", "Geweigerd", "Refused"),
)
SEX = _codes(("M", "Man", "Man"), ("V", "Vrouw", "Woman"))
EDUCATION = _codes(
    ("laag", "Laaggeschoold", "Low-educated"),
    ("midden", "Middengeschoold", "Medium-educated"),
    ("hoog", "Hooggeschoold", "High-educated"),
)
SECTORS = _codes(
    ("primair", "Primaire sector", "Primary sector"),
    ("secundair", "Secundaire sector", "Secondary sector"),
    ("tertiair", "Tertiaire sector", "Tertiary sector"),
    ("quartair", "Quartaire sector", "Quaternary sector"),
)
NACE_SECTIONS = _codes(
    ("A", "Landbouw, bosbouw en visserij", "Agriculture, forestry and fishing"),
    ("B", "Winning van delfstoffen", "Mining and quarrying"),
    ("C", "Industrie", "Manufacturing"),
    ("D", "Energievoorziening", "Electricity and gas supply"),
    ("E", "Water en afval", "Water supply and waste"),
    ("F", "Bouwnijverheid", "Construction"),
    ("G", "Handel", "Wholesale and retail trade"),
    ("H", "Vervoer en opslag", "Transportation and storage"),
    ("I", "Horeca", "Accommodation and food services"),
    ("J", "Informatie en communicatie", "Information and communication"),
    ("K", "Financiële instellingen", "Financial and insurance activities"),
    ("L", "Exploitatie van onroerend goed", "Real estate activities"),
    ("M", "Vrije beroepen en wetenschap", "Professional and scientific activities"),
    ("N", "Administratieve en ondersteunende diensten", "Administrative and support services"),
    ("O", "Openbaar bestuur", "Public administration"),
    ("P", "Onderwijs", "Education"),
    ("Q", "Gezondheidszorg en maatschappelijke dienstverlening", "Health and social work"),
    ("R", "Kunst, amusement en recreatie", "Arts and recreation"),
    ("S", "Overige diensten", "Other services"),
    ("T", "Huishoudens als werkgever", "Households as employers"),
    ("U", "Extraterritoriale organisaties", "Extraterritorial organisations"),
)
#: The classification of NACE sections into four sectors used by DWSE.
NACE_TO_SECTOR: dict[str, str] = {
    "A": "primair",
    **{s: "secundair" for s in "BCDEF"},
    **{s: "tertiair" for s in "GHIJKLMNRST"},
    **{s: "quartair" for s in "OPQU"},
}
COMPANY_SIZE = _codes(
    ("1-9", "1 tot 9 werknemers", "1 to 9 employees"),
    ("10-49", "10 tot 49 werknemers", "10 to 49 employees"),
    ("50-249", "50 tot 249 werknemers", "50 to 249 employees"),
    ("250+", "250 of meer werknemers", "250 employees or more"),
)
PROVINCES = _codes(
    ("ANT", "Antwerpen", "Antwerp"),
    ("LIM", "Limburg", "Limburg"),
    ("OVL", "Oost-Vlaanderen", "East Flanders"),
    ("VBR", "Vlaams-Brabant", "Flemish Brabant"),
    ("WVL", "West-Vlaanderen", "West Flanders"),
    ("BRU", "Brussels Hoofdstedelijk Gewest", "Brussels-Capital Region"),
    ("BUI", "Buiten België", "Outside Belgium"),
)
STATUTES = _codes(
    ("arbeider", "Arbeider", "Blue-collar worker"),
    ("bediende", "Bediende", "White-collar worker"),
    ("ambtenaar", "Ambtenaar", "Civil servant"),
    ("uitzendkracht", "Uitzendkracht", "Temporary agency worker"),
)
TRAINING_DOMAINS = _codes(
    ("ZORG", "Zorg en welzijn", "Health care and welfare"),
    ("ONDERWIJS", "Onderwijs en pedagogie", "Education and pedagogy"),
    ("ICT", "ICT en digitale vaardigheden", "ICT and digital skills"),
    ("TALEN", "Talen", "Languages"),
    ("TECHNIEK", "Techniek en industrie", "Engineering and industry"),
    ("MANAGEMENT", "Management en administratie", "Management and administration"),
    ("TRANSPORT", "Transport en logistiek", "Transport and logistics"),
    ("OVERIG", "Overige", "Other"),
)
AGE_BANDS = _codes(
    ("18-24", "18 tot 24 jaar", "18 to 24 years"),
    ("25-34", "25 tot 34 jaar", "25 to 34 years"),
    ("35-44", "35 tot 44 jaar", "35 to 44 years"),
    ("45-54", "45 tot 54 jaar", "45 to 54 years"),
    ("55+", "55 jaar of ouder", "55 years or older"),
)
#: School years of the study window; a school year runs from 1 September to 31 August.
SCHOOL_YEARS = _codes(
    *((f"{y}-{(y + 1) % 100:02d}", f"Schooljaar {y}-{y + 1}", f"School year {y}-{y + 1}") for y in range(2019, 2024))
)


def codes(vocabulary: tuple[Code, ...]) -> list[str]:
    """The codes of a vocabulary, in order."""
    return [c.code for c in vocabulary]


def label(vocabulary: tuple[Code, ...], code: str, lang: str = "nl") -> str:
    """The label of ``code`` in ``lang`` ('nl' or 'en')."""
    for c in vocabulary:
        if c.code == code:
            return c.nl if lang == "nl" else c.en
    raise KeyError(code)


def age_band(age: int) -> str:
    """The age band of an age in whole years (ages under 18 fall in '18-24')."""
    if age < 25:
        return "18-24"
    if age < 35:
        return "25-34"
    if age < 45:
        return "35-44"
    if age < 55:
        return "45-54"
    return "55+"


@dataclass(frozen=True)
class Column:
    """One column of an input table.

    Parameters
    ----------
    name
        Column name as it appears in the file.
    dtype
        ``str``, ``int``, ``float``, ``date`` (ISO ``YYYY-MM-DD``), ``bool`` (``0``/``1``) or
        ``category`` (one of ``vocabulary``).
    nl, en
        Labels for reports.
    vocabulary
        The allowed codes for a ``category``.
    nullable
        Whether an empty value is allowed.
    pattern
        A regular expression every non-empty value must match in full.
    pseudo_key
        The column holds a pseudonymous person key (checked for raw INSZ numbers).
    min, max
        Bounds for numeric columns.
    """

    name: str
    dtype: DType
    nl: str
    en: str
    vocabulary: tuple[Code, ...] | None = None
    nullable: bool = False
    pattern: str | None = None
    pseudo_key: bool = False
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Table:
    """An input table: its columns and its key."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        """The column called ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_PERSON_KEY = Column(
    "person_key",
    "str",
    "Pseudonieme persoonssleutel",
    "Pseudonymous person key",
    pattern=PSEUDO_KEY_PATTERN,
    pseudo_key=True,
)

#: Person characteristics recorded at application (and harmonised for linkage).
_CHARACTERISTICS: tuple[Column, ...] = (
    Column("sex", "category", "Geslacht", "Sex", vocabulary=SEX),
    Column("birth_year", "int", "Geboortejaar", "Birth year", min=1940, max=2010),
    Column("educ", "category", "Onderwijsniveau", "Education level", vocabulary=EDUCATION),
    Column("nace", "category", "Sector werkgever (NACE-sectie)", "Employer sector (NACE section)", vocabulary=NACE_SECTIONS),
    Column("sector", "category", "Sector werkgever", "Employer sector", vocabulary=SECTORS),
    Column("company_size", "category", "Grootte onderneming", "Company size", vocabulary=COMPANY_SIZE),
    Column("province", "category", "Provincie", "Province", vocabulary=PROVINCES),
    Column("statute", "category", "Statuut", "Statute", vocabulary=STATUTES),
)

DWSE_APPLICATIONS = Table(
    name="dwse_applications",
    description="DWSE extract: one row per application for an incentive.",
    key=("application_id",),
    columns=(
        Column("application_id", "str", "Aanvraag-id", "Application id", pattern=r"[A-Z]{2,5}-\d{4}-\d{7}"),
        _PERSON_KEY,
        Column("incentive", "category", "Incentive", "Incentive", vocabulary=INCENTIVES),
        Column("school_year", "category", "Schooljaar", "School year", vocabulary=SCHOOL_YEARS),
        Column("application_date", "date", "Aanvraagdatum", "Application date"),
        Column("status", "category", "Beslissing", "Decision", vocabulary=STATUS),
        Column("training_id", "str", "Opleidings-id", "Training id", pattern=r"OPL\d{6}"),
        Column("training_domain", "category", "Opleidingsdomein", "Training domain", vocabulary=TRAINING_DOMAINS),
        Column("in_databank", "bool", "In opleidingsdatabank", "In the training database"),
        Column("pop_based", "bool", "POP-gebaseerd (POP-attest)", "POP-based (POP certificate)"),
        *_CHARACTERISTICS,
    ),
)

VDAB_TRAJECTORIES = Table(
    name="vdab_trajectories",
    description="VDAB extract: one row per loopbaancheque (career-guidance) trajectory.",
    key=("trajectory_id",),
    columns=(
        Column("trajectory_id", "str", "Traject-id", "Trajectory id", pattern=r"LBT\d{8}"),
        _PERSON_KEY,
        Column("start_date", "date", "Startdatum", "Start date"),
        Column("end_date", "date", "Einddatum", "End date", nullable=True),
        Column("loopbaancentrum", "str", "Loopbaancentrum", "Career-guidance centre", pattern=r"LBC\d{3}"),
        Column("pop_made", "bool", "POP opgemaakt", "POP made"),
        Column("pop_attest", "bool", "POP-attest uitgereikt", "POP certificate issued"),
        Column("attest_training_id", "str", "Opleiding in POP-attest", "Training named in the POP certificate", nullable=True, pattern=r"OPL\d{6}"),
    ),
)

#: The participants table as popeval stores it from ``list_participants`` (attribute_1 = key).
SURVEY_PARTICIPANTS = Table(
    name="survey_participants",
    description="LimeSurvey participants: token and the pseudonymous key in attribute_1.",
    key=("tid",),
    columns=(
        Column("tid", "int", "Deelnemer-id", "Participant id", min=1),
        Column("token", "str", "Toegangscode", "Access code", pattern=r"[A-Za-z0-9_~-]{1,35}"),
        Column("attribute_1", "str", "Pseudonieme sleutel", "Pseudonymous key", pattern=r"[A-Za-z0-9_\-]{1,255}", pseudo_key=True),
    ),
)

ALL_TABLES: dict[str, Table] = {t.name: t for t in (DWSE_APPLICATIONS, VDAB_TRAJECTORIES, SURVEY_PARTICIPANTS)}


def is_pseudo_key(value: str) -> bool:
    """Whether ``value`` has the form of a pseudonymous person key."""
    return bool(_PSEUDO_KEY_RE.fullmatch(value))
