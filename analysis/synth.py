"""A synthetic study with known truth: admin extracts, a LimeSurvey export, and the ground truth.

:func:`generate` writes, deterministically from its seed, the three inputs a real study has —
the DWSE applications extract, the VDAB career-guidance extract and the survey as LimeSurvey exports
it — plus a ``truth/`` folder that the pipeline never reads (only tests and benchmarks do).

The generating model (all parameters are in :class:`SynthParams`):

* **Persons** belong to one primary segment (VOV, opleidingscheques, opleidingskrediet, loopbaancheque)
  whose characteristics follow the published profiles (``../shared/context/DOMAIN.md``), and may use
  other incentives too.
* **POP route.** A person's tendency to use an incentive through a POP is a logistic function of
  education, age band, sector, sex and company size (POP users skew high-educated, 25-44,
  tertiary/quaternary, women and smaller firms).  The intercept per incentive is solved by bisection
  so that POP-based use is 6 % of approved opleidingscheque applications, 0.8 % of approved VOV
  applications and 25 % of opleidingskrediet applications.  11 % of POP-based approvals concern
  trainings outside the opleidingsdatabank.  Exactly 3 % of loopbaancheque users go on to a
  POP-based application; the other POP users had their guidance before the extract window.
* **Incentive rules by education.** High-educated workers may use opleidingscheques and the
  opleidingskrediet premium only for a training in their POP (DOMAIN.md, 1.1 and 1.4): a
  high-educated person whose use would not be POP-based does not use that incentive.  A small
  share ``registration_error_p`` (default 2 %) of these non-POP uses is nevertheless recorded (the
  education or the POP flag is registered wrongly), so the cell "no POP and high-educated" is
  nearly, not exactly, empty.  The POP-route intercepts are solved on the incentive's users
  *after* this rule.  VOV has no such rule.
* **Survey.** Opleidingscheque users (the study population) are sampled stratified by POP status (POP
  users oversampled); response propensity is multiplicative in education, age band, sex, company size
  and POP status, so unweighted respondents misrepresent the population.
* **Outcomes.** Four 5-point Likert items from a latent model with a person effect (the items
  correlate), confounders that also drive POP, and a known POP effect per item.  Both potential
  outcomes are drawn with the same noise, so the population ATT is known exactly.
* **Harder worlds** (off by default, switched on per scenario by ``bench/known_truth.py``): exact
  age as a continuous confounder, effects that grow with the propensity, interactions left out of
  the uptake or outcome model, response that depends on POP x education and on the outcome,
  informative 'weet niet', a hidden confounder, weak overlap and clustering by career centre (see
  the fields of :class:`SynthParams`).
* **Messy reality:** incomplete responses (no submitdate), 'weet niet' (99), a few duplicate
  submissions, participants and responses that cannot be linked, free text with Dutch accents,
  conflicting characteristics between a person's applications.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from survey.datamodel import (
    AGE_BANDS,
    COMPANY_SIZE,
    EDUCATION,
    NACE_SECTIONS,
    NACE_TO_SECTOR,
    PROVINCES,
    SCHOOL_YEARS,
    STATUTES,
    TRAINING_DOMAINS,
    codes,
)
from survey.errors import ConfigError
from survey.hashing import sha256_file
from survey.lsformat import php_json_dumps, write_csv_export
from survey.questionnaire import OUTCOMES, QUESTIONNAIRE, TRAINDOMAIN_TO_DOMAIN

__all__ = ["DEMO_SURVEY_ID", "DemoSummary", "SynthParams", "generate"]

#: The LimeSurvey survey id of the demo study.
DEMO_SURVEY_ID = 461283
#: The (fixed) time of the demo snapshot, so that files are byte-identical across runs.
DEMO_SNAPSHOT = "20230704T080000Z"

_SEGMENTS = ("VOV", "OC", "VAPOK", "LBC")
_EDUC = codes(EDUCATION)
_BANDS = codes(AGE_BANDS)
_SIZES = codes(COMPANY_SIZE)
_NACE = codes(NACE_SECTIONS)
_PROV = codes(PROVINCES)
_STAT = codes(STATUTES)
_DOMAINS = codes(TRAINING_DOMAINS)
_YEARS = codes(SCHOOL_YEARS)
_DOMAIN_TO_CODE = {v: k for k, v in TRAINDOMAIN_TO_DOMAIN.items()}
_SECTORS = ["primair", "secundair", "tertiair", "quartair"]


@dataclass(frozen=True)
class SynthParams:
    """Every parameter of the generating model (defaults are the demo study)."""

    segment_p: tuple[float, ...] = (0.55, 0.16, 0.035, 0.255)
    woman_p: tuple[float, ...] = (0.38, 0.50, 0.65, 0.70)
    educ_p: tuple[tuple[float, ...], ...] = ((0.25, 0.50, 0.25), (0.22, 0.62, 0.16), (0.20, 0.45, 0.35), (0.08, 0.22, 0.70))
    band_p: tuple[tuple[float, ...], ...] = (
        (0.10, 0.36, 0.27, 0.19, 0.08),
        (0.12, 0.28, 0.26, 0.22, 0.12),
        (0.05, 0.30, 0.43, 0.17, 0.05),
        (0.08, 0.30, 0.34, 0.22, 0.06),
    )
    size_p: tuple[tuple[float, ...], ...] = (
        (0.05, 0.11, 0.30, 0.54),
        (0.24, 0.26, 0.22, 0.28),
        (0.15, 0.25, 0.25, 0.35),
        (0.20, 0.22, 0.24, 0.34),
    )
    province_p: tuple[float, ...] = (0.27, 0.13, 0.23, 0.16, 0.18, 0.025, 0.005)
    # POP route: logistic coefficients
    b_educ: tuple[float, ...] = (0.0, 0.7, 2.3)
    b_band: tuple[float, ...] = (0.0, 0.55, 0.5, 0.1, -0.4)
    b_sector: tuple[float, ...] = (-0.3, -0.3, 0.1, 0.6)
    b_woman: float = 0.35
    b_size: tuple[float, ...] = (0.35, 0.25, 0.0, -0.2)
    pop_share_oc: float = 0.06
    pop_share_vov: float = 0.008
    pop_share_vapok: float = 0.25
    pop_outside_databank: float = 0.11
    #: share of the non-POP opleidingscheque / opleidingskrediet uses by high-educated persons
    #: (forbidden by the rules) that are recorded anyway: registration errors
    registration_error_p: float = 0.02
    lbc_to_pop_share: float = 0.03
    attest_mismatch: float = 0.175
    refused_p: float = 0.07
    # survey design
    sample_frac_pop: float = 0.85
    sample_frac_nonpop: float = 0.25
    resp_base: float = 0.18
    r_educ: tuple[float, ...] = (0.0, 0.15, 0.35)
    r_band: tuple[float, ...] = (-0.35, -0.15, 0.0, 0.15, 0.25)
    r_woman: float = 0.10
    r_size: tuple[float, ...] = (0.10, 0.05, 0.0, -0.05)
    r_pop: float = 0.30
    incomplete_p: float = 0.15
    duplicate_p: float = 0.015
    unlinked_participant_p: float = 0.004
    orphan_response_p: float = 0.003
    # outcomes (latent scale; noise N(0,1) plus a person effect N(0, sd_person^2))
    tau: tuple[float, ...] = (0.45, 0.30, 0.35, 0.20)
    mu: tuple[float, ...] = (0.5, 0.4, -0.3, 0.9)
    o_educ: tuple[tuple[float, ...], ...] = ((0.0, 0.1, 0.3), (0.0, 0.1, 0.25), (0.0, 0.05, 0.35), (0.0, 0.0, -0.1))
    o_band: tuple[tuple[float, ...], ...] = (
        (0.1, 0.05, 0.0, -0.1, -0.2),
        (0.0, 0.05, 0.0, -0.05, -0.1),
        (0.4, 0.25, 0.0, -0.3, -0.6),
        (0.0, 0.0, 0.05, 0.1, 0.15),
    )
    o_sector: tuple[tuple[float, ...], ...] = ((0, 0, 0, 0.2), (0, 0, 0.05, 0.2), (0, 0.1, 0.1, -0.1), (0, 0, 0, 0.1))
    o_woman: tuple[float, ...] = (0.1, 0.05, -0.1, 0.1)
    o_size: tuple[tuple[float, ...], ...] = ((0, 0, 0, 0), (0, 0, 0, 0), (-0.2, -0.1, 0.0, 0.15), (0.1, 0.05, 0, 0))
    sd_person: float = 0.8
    cuts: tuple[float, ...] = (-1.6, -0.7, 0.3, 1.4)
    dont_know_p: tuple[float, ...] = (0.03, 0.03, 0.08, 0.01)
    # ---- switchable features of harder worlds (all off by default; bench/known_truth.py scenarios).
    # Their random draws come from a stream of their own, so switching one on leaves the others'.
    #: exact age (from the birth year, within the age band) in POP uptake and outcomes: a
    #: continuous confounder the age band captures only partly (per 5 years from the band's middle)
    b_age_exact: float = 0.0
    o_age_exact: float = 0.0
    #: effect heterogeneity: the latent effect is tau * (1 + tau_ps * standardised logit propensity),
    #: so the ATT, the ATE and a constant-effect regression coefficient differ
    tau_ps: float = 0.0
    #: interactions left out of the analysis models: uptake (mid-educated x woman) and outcome
    #: (age band 18-24 x quaternary sector)
    b_interaction: float = 0.0
    o_interaction: float = 0.0
    #: response that depends on POP x high education and on the outcome (per Likert point of the
    #: mean observed outcome above 3)
    r_pop_high: float = 0.0
    r_outcome: float = 0.0
    #: informative 'weet niet': its odds rise by this factor per Likert point below 3
    dk_outcome: float = 0.0
    #: a hidden confounder u ~ N(0, 1) in uptake (b_hidden) and outcomes (o_hidden)
    b_hidden: float = 0.0
    o_hidden: float = 0.0
    #: weak overlap: the covariate part of POP uptake multiplied by this factor
    overlap_scale: float = 1.0
    #: clustering by career centre: SD of a centre effect on the POP users' outcomes (40 centres)
    sd_centre: float = 0.0


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`generate` wrote, with headline counts."""

    out: Path
    persons: int
    seed: int
    applications: int
    trajectories: int
    oc_users: int
    pop_oc_users: int
    invited: int
    responses: int
    complete: int
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A short printable summary."""
        lines = [
            f"Synthetic study (seed {self.seed}) written to {self.out}",
            f"  persons              {self.persons:>10,}",
            f"  DWSE applications    {self.applications:>10,}",
            f"  VDAB trajectories    {self.trajectories:>10,}",
            f"  opleidingscheque users {self.oc_users:>8,}  (with POP: {self.pop_oc_users:,})",
            f"  survey invitations   {self.invited:>10,}",
            f"  survey responses     {self.responses:>10,}  (complete: {self.complete:,})",
        ]
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The counts as a one-column frame."""
        d = {k: v for k, v in asdict(self).items() if isinstance(v, int)}
        return pd.DataFrame({"value": d})


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _choice(rng: np.random.Generator, p_rows: np.ndarray) -> np.ndarray:
    """Draw one category per row from row-specific probabilities (rows of ``p_rows``)."""
    c = np.cumsum(p_rows, axis=1)
    c /= c[:, -1:]
    u = rng.random(len(p_rows))[:, None]
    return (u > c).sum(axis=1)


def _solve_intercept(eta: np.ndarray, w: np.ndarray, target: float) -> float:
    """Intercept a such that the w-weighted mean of expit(a + eta) equals target (bisection)."""
    lo, hi = -20.0, 20.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.average(_expit(mid + eta), weights=w) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _solve_intercept_eligible(eta: np.ndarray, w: np.ndarray, allowed: np.ndarray, target: float) -> float:
    """Intercept such that POP-based use is ``target`` of the uses that the rules allow.

    A use is POP-based with probability ``expit(a + eta)``; a non-POP use happens only with
    probability ``allowed`` (1, or the registration-error rate for high-educated persons).  The
    POP share of the resulting uses, weighted by ``w`` (applications per person), is solved for.
    """
    lo, hi = -20.0, 20.0
    for _ in range(100):
        mid = (lo + hi) / 2
        q = _expit(mid + eta)
        share = np.sum(w * q) / np.sum(w * (q + (1 - q) * allowed))
        if share < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _keys(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct pseudonymous keys (32 hex digits) drawn from ``rng``."""
    raw = rng.bytes(16 * n)
    out = np.frombuffer(raw.hex().encode("ascii"), dtype="S32").astype("U32").astype(object)
    if len(set(out)) != n:  # pragma: no cover - 128-bit collision
        raise RuntimeError("key collision")
    return out


def _tokens(rng: np.random.Generator, n: int) -> list[str]:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    idx = rng.integers(0, len(alphabet), size=(n, 15))
    toks = ["".join(r) for r in alphabet[idx]]
    if len(set(toks)) != n:  # pragma: no cover
        raise RuntimeError("token collision")
    return toks


def _dates(days: np.ndarray) -> np.ndarray:
    return (np.datetime64("1970-01-01") + days.astype("timedelta64[D]")).astype("datetime64[D]")


_REMARKS = (
    "Zeer praktijkgerichte opleiding, ik pas het elke dag toe.",
    "De lesgever was uitstekend; de cursus was wel vrij duur.",
    "Dankzij de loopbaanbegeleiding wist ik eindelijk welke richting ik uit wilde.",
    "Moeilijk te combineren met mijn werk en gezin, maar het was de moeite waard.",
    'Het "POP-attest" aanvragen was ingewikkeld; meer uitleg zou helpen.',
    "Ik heb een nieuwe functie gekregen als coördinator.",
    "Te veel theorie, te weinig oefeningen.\nGraag meer praktijk.",
    "Cursus geannuleerd en verplaatst naar het volgende semester – jammer.",
    "Goede begeleiding door het centrum; ik raad het iedereen aan.",
    "Mijn werkgever was niet op de hoogte van het opleidingsverlof.",
    "Café-gesprekken met medecursisten waren even leerrijk als de lessen!",
    "Ik ben tevreden, maar de examens vielen samen met een drukke periode.",
)
_OTHER_DOMAIN = (
    "Crèchebegeleiding",
    "Coördinatie van vrijwilligers – één module",
    "Rijbewijs C",
    "Bemiddeling en conflicthantering",
    "Hoveniersopleiding",
    "Fotografie en beeldbewerking",
)


def generate(
    persons: int = 200_000,
    seed: int = 2023,
    out: str | Path = "data_raw/demo",
    params: SynthParams | None = None,
    file_format: str = "csv",
    raw_insz: bool = False,
) -> DemoSummary:
    """Generate the synthetic study and write it to ``out``.

    Parameters
    ----------
    persons
        Number of persons in the admin universe (1,000 to several million).
    seed
        The seed; the same seed gives byte-identical files.
    out
        Output folder (created; existing demo files are overwritten).
    params
        The model's parameters (:class:`SynthParams`).
    file_format
        ``csv`` or ``parquet`` for the admin extracts.
    raw_insz
        Write synthetic but checksum-valid raw INSZ numbers instead of pseudonymous keys in the admin
        extracts (to test that ingest refuses or pseudonymises them).  Never the default.

    Returns
    -------
    DemoSummary
    """
    if persons < 1_000:
        raise ConfigError(
            "Too few persons for a synthetic study",
            param="persons",
            expected="at least 1000",
            found=str(persons),
            hint="use --persons 1000 or more",
        )
    if file_format not in ("csv", "parquet"):
        raise ConfigError(
            "Unknown file format", param="file_format", expected="csv or parquet", found=file_format, hint="use csv or parquet"
        )
    p = params or SynthParams()
    rng = np.random.default_rng(seed)
    # the harder worlds' draws come from a stream of their own (all their terms are zero by default)
    rng_h = np.random.default_rng([seed, 4])
    out = Path(out)
    n = persons

    people = _persons(n, p, rng, rng_h)
    apps = _applications(people, p, rng, seed)
    traj = _vdab_trajectories(people, apps, p, rng)
    dwse = _dwse_extract(people, apps)
    study = _study_population(people, apps, p, rng, rng_h)
    survey = _survey(people, study, traj.has_lbc, dwse, p, rng)
    fake_keys = None
    if raw_insz:
        from survey.insz import synthetic_insz

        fake_keys = np.array(synthetic_insz(rng, n), dtype=object)

    files = _write_admin(out, dwse, traj.frame, file_format, people.person_key, fake_keys)
    files.update(_write_survey(out, survey))
    files.update(_write_truth(out, _truth_record(people, apps, traj, study, p, seed), _truth_units(people, apps, study)))
    (out / "README.txt").write_text(
        "Synthetic popeval study (no real persons). Generated by `popeval demo`"
        f" --persons {n} --seed {seed}.\nadmin/: DWSE and VDAB extracts; survey/: LimeSurvey snapshot and"
        " invitation list; truth/: ground truth (never read by the pipeline).\n",
        encoding="utf-8",
    )
    # provenance marker: the data are synthetic whatever the study is called (the run manifest records it)
    (out / "provenance.json").write_text(json.dumps({"provenance": "synthetic", "generator": "popeval demo", "persons": n, "seed": seed}, sort_keys=True) + "\n", encoding="utf-8")
    return DemoSummary(
        out=out,
        persons=n,
        seed=seed,
        applications=len(dwse),
        trajectories=len(traj.frame),
        oc_users=study.n,
        pop_oc_users=int(study.pop.sum()),
        invited=survey.invited,
        responses=len(survey.rows),
        complete=survey.complete,
        files=files,
    )


# ---------------------------------------------------------------------------- the stages' results


@dataclass(frozen=True)
class _Persons:
    """The admin universe: one entry per person (index = person id)."""

    person_key: np.ndarray
    woman: np.ndarray
    educ: np.ndarray
    band: np.ndarray
    birth_year: np.ndarray
    #: exact age's distance from the middle of its age band, per 5 years
    age_dev: np.ndarray
    size: np.ndarray
    province: np.ndarray
    nace: np.ndarray
    sector: np.ndarray
    statute: np.ndarray
    #: incentive memberships (opleidingscheques before the rule by education)
    has_vov: np.ndarray
    has_oc: np.ndarray
    has_vapok: np.ndarray
    has_lbc: np.ndarray
    #: the hidden confounder u ~ N(0, 1)
    hidden: np.ndarray
    #: the covariate part of POP uptake (logit scale)
    eta: np.ndarray


@dataclass(frozen=True)
class _Trainings:
    """The training drawn for each application, and the catalogue's size."""

    count: int
    training: np.ndarray
    domain: np.ndarray
    in_db: np.ndarray


@dataclass(frozen=True)
class _Applications:
    """The incentives' applications (one entry per application) and the persons' POP route."""

    pid: np.ndarray
    incentive: np.ndarray
    year_idx: np.ndarray
    day: np.ndarray
    pop: np.ndarray
    refused: np.ndarray
    trainings: _Trainings
    #: characteristics recorded with the application (a few conflict across a person's applications)
    educ: np.ndarray
    size: np.ndarray
    #: per person: approved opleidingscheque users (after the rule), their POP status and propensity
    oc_user: np.ndarray
    pop_oc: np.ndarray
    ps_oc: np.ndarray
    #: the POP route's intercepts per incentive
    a_oc: float
    a_vov: float
    a_vapok: float


@dataclass(frozen=True)
class _Trajectories:
    """The VDAB extract and who had career guidance."""

    frame: pd.DataFrame
    #: per person: a loopbaancheque trajectory in the extract
    has_lbc: np.ndarray
    #: the persons whose trajectory led to their POP-based application
    linked_pop: np.ndarray


@dataclass(frozen=True)
class _StudyPopulation:
    """The study population (opleidingscheque users): potential outcomes, sampling and response."""

    pid: np.ndarray
    pop: np.ndarray
    educ: np.ndarray
    band: np.ndarray
    sector: np.ndarray
    woman: np.ndarray
    size: np.ndarray
    centre: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    y_obs: np.ndarray
    sample_p: np.ndarray
    sampled: np.ndarray
    response_p: np.ndarray
    responded: np.ndarray

    @property
    def n(self) -> int:
        """The population's size."""
        return len(self.pid)


@dataclass(frozen=True)
class _Survey:
    """The survey as LimeSurvey exports it: participants and response rows."""

    header: list[str]
    participants: list[dict[str, Any]]
    rows: list[dict[str, object]]
    invited: int

    @property
    def complete(self) -> int:
        """The complete responses (with a submitdate)."""
        return sum(r["submitdate"] is not None for r in self.rows)


# ---------------------------------------------------------------------------- persons


def _persons(n: int, p: SynthParams, rng: np.random.Generator, rng_h: np.random.Generator) -> _Persons:
    """The persons of the admin universe: characteristics and incentive memberships."""
    seg = rng.choice(4, size=n, p=np.asarray(p.segment_p) / sum(p.segment_p))
    woman = rng.random(n) < np.asarray(p.woman_p)[seg]
    educ = _choice(rng, np.asarray(p.educ_p)[seg])
    band = _choice(rng, np.asarray(p.band_p)[seg])
    lo_age = np.array([19, 25, 35, 45, 55])[band]
    hi_age = np.array([24, 34, 44, 54, 64])[band]
    age2021 = lo_age + (rng.random(n) * (hi_age - lo_age + 1)).astype(int)
    size = _choice(rng, np.asarray(p.size_p)[seg])
    province = rng.choice(len(_PROV), size=n, p=np.asarray(p.province_p) / sum(p.province_p))
    nace = _choice(rng, _nace_probabilities()[seg])
    sector = np.array([_SECTORS.index(NACE_TO_SECTOR[_NACE[k]]) for k in range(len(_NACE))])[nace]
    statute = np.where(
        seg == 0,
        rng.choice([0, 1, 3], size=n, p=[0.45, 0.50, 0.05]),
        rng.choice(4, size=n, p=[0.30, 0.58, 0.07, 0.05]),
    )
    statute = np.where((sector == 3) & (nace == _NACE.index("O")), 2, statute)
    person_key = _keys(rng, n)

    # memberships
    u = rng.random((n, 4))
    has_vov = (seg == 0) | ((seg == 1) & (u[:, 0] < 0.10)) | ((seg == 3) & (u[:, 0] < 0.08))
    has_oc = (seg == 1) | ((seg == 0) & (u[:, 1] < 0.04)) | ((seg == 3) & (u[:, 1] < 0.06)) | ((seg == 2) & (u[:, 1] < 0.15))
    has_vapok = (seg == 2) | ((seg == 0) & (u[:, 2] < 0.005)) | ((seg == 3) & (u[:, 2] < 0.01))
    has_lbc = (seg == 3) | ((seg == 1) & (u[:, 3] < 0.10)) | ((seg == 2) & (u[:, 3] < 0.15)) | ((seg == 0) & (u[:, 3] < 0.02))

    eta = (
        np.asarray(p.b_educ)[educ]
        + np.asarray(p.b_band)[band]
        + np.asarray(p.b_sector)[sector]
        + p.b_woman * woman
        + np.asarray(p.b_size)[size]
    )
    # harder worlds (all terms are zero by default)
    hidden = rng_h.normal(size=n)
    age_dev = (age2021 - (lo_age + hi_age) / 2) / 5.0
    eta = (
        p.overlap_scale * eta
        + p.b_age_exact * age_dev
        + p.b_interaction * ((educ == 1) & woman)
        + p.b_hidden * hidden
    )
    return _Persons(
        person_key=person_key,
        woman=woman,
        educ=educ,
        band=band,
        birth_year=2021 - age2021,
        age_dev=age_dev,
        size=size,
        province=province,
        nace=nace,
        sector=sector,
        statute=statute,
        has_vov=has_vov,
        has_oc=has_oc,
        has_vapok=has_vapok,
        has_lbc=has_lbc,
        hidden=hidden,
        eta=eta,
    )


def _nace_probabilities() -> np.ndarray:
    """NACE section probabilities per primary segment (VOV is private sector only: no O)."""
    nace_w = {
        "VOV": dict(C=20, F=8, G=14, H=8, I=3, J=6, K=4, M=6, N=8, Q=16, R=1, S=3, A=1, D=1, E=1),
        "OC": dict(C=12, F=6, G=15, H=6, I=4, J=6, K=3, M=6, N=8, O=4, P=6, Q=18, R=2, S=3, A=1),
        "VAPOK": dict(C=10, F=4, G=10, H=5, I=2, J=6, K=3, M=6, N=6, O=5, P=12, Q=25, R=2, S=3, A=1),
        "LBC": dict(C=10, F=3, G=11, H=4, I=3, J=7, K=4, M=8, N=6, O=8, P=13, Q=19, R=2, S=2, A=1),
    }
    nace_p = np.zeros((4, len(_NACE)))
    for i, sname in enumerate(_SEGMENTS):
        for code, v in nace_w[sname].items():
            nace_p[i, _NACE.index(code)] = v
    return nace_p


# ---------------------------------------------------------------------------- applications


def _applications(people: _Persons, p: SynthParams, rng: np.random.Generator, seed: int) -> _Applications:
    """Applications for the incentives (the rules of DOMAIN.md), POP status and trainings."""
    n = len(people.person_key)
    educ, eta = people.educ, people.eta
    has_oc, has_vov, has_vapok = people.has_oc, people.has_vov, people.has_vapok
    n_oc = np.where(has_oc, 1 + np.minimum(rng.poisson(0.25, n), 3), 0)
    n_vov = np.where(has_vov, 1 + np.minimum(rng.poisson(0.7, n), 5), 0)
    n_vapok = np.where(has_vapok, 1 + np.minimum(rng.poisson(0.1, n), 2), 0)

    # the rules: high-educated persons use OC and VAPOK only through a POP; a non-POP use by a
    # high-educated person is recorded only as a registration error (own stream: the draws of
    # the rest of the model do not shift with the error rate)
    rng_rules = np.random.default_rng([seed, 14])
    high = educ == _EDUC.index("hoog")
    allowed = np.where(high, p.registration_error_p, 1.0)

    # OC: POP status is a person-level treatment (all the person's OC applications follow it)
    a_oc = _solve_intercept_eligible(eta[has_oc], n_oc[has_oc].astype(float), allowed[has_oc], p.pop_share_oc)
    ps_oc = _expit(a_oc + eta)
    pop_oc = has_oc & (rng.random(n) < ps_oc)
    oc_error = rng_rules.random(n) < p.registration_error_p
    has_oc = has_oc & (pop_oc | ~high | oc_error)
    n_oc = np.where(has_oc, n_oc, 0)
    a_vov = _solve_intercept(eta[has_vov], n_vov[has_vov].astype(float), p.pop_share_vov)
    a_vapok = _solve_intercept_eligible(eta[has_vapok], n_vapok[has_vapok].astype(float), allowed[has_vapok], p.pop_share_vapok)

    apps = _application_rows(n, {"OC": n_oc, "VOV": n_vov, "VAPOK": n_vapok}, rng)
    pid = apps["pid"].to_numpy()
    inc = apps["incentive"].to_numpy()
    is_oc, is_vov, is_vapok = inc == "OC", inc == "VOV", inc == "VAPOK"
    pop_app = np.zeros(len(apps), dtype=bool)
    pop_app[is_oc] = pop_oc[pid[is_oc]]
    pop_app[is_vov] = rng.random(is_vov.sum()) < _expit(a_vov + eta[pid[is_vov]])
    pop_app[is_vapok] = rng.random(is_vapok.sum()) < _expit(a_vapok + eta[pid[is_vapok]])
    # VAPOK: a non-POP application of a high-educated person exists only as a registration error
    legal = ~(is_vapok & ~pop_app & high[pid]) | (rng_rules.random(len(apps)) < p.registration_error_p)
    if not legal.all():
        apps = apps.loc[legal].reset_index(drop=True)
        pid, inc, pop_app = pid[legal], inc[legal], pop_app[legal]
        is_oc = inc == "OC"
    m = len(apps)
    refused = rng.random(m) < np.where(pop_app, p.refused_p * 0.6, p.refused_p)
    first_oc = is_oc & ~pd.Series(pid).where(is_oc).duplicated().to_numpy()
    refused[first_oc] = False  # every OC person has an approved application (they are users)

    trainings = _trainings(n, inc, pop_app, p, rng)

    # characteristics at application, with a few conflicts across a person's applications
    a_size = people.size[pid].copy()
    a_educ = educ[pid].copy()
    later = apps.duplicated("pid", keep="first").to_numpy()
    change_size = later & (rng.random(m) < 0.03)
    a_size[change_size] = rng.integers(0, 4, change_size.sum())
    change_educ = later & (rng.random(m) < 0.01) & (a_educ < 2)
    a_educ[change_educ] += 1
    return _Applications(
        pid=pid,
        incentive=inc,
        year_idx=apps["year_idx"].to_numpy(),
        day=apps["day"].to_numpy(),
        pop=pop_app,
        refused=refused,
        trainings=trainings,
        educ=a_educ,
        size=a_size,
        oc_user=has_oc,
        pop_oc=pop_oc,
        ps_oc=ps_oc,
        a_oc=a_oc,
        a_vov=a_vov,
        a_vapok=a_vapok,
    )


def _application_rows(n: int, counts: dict[str, np.ndarray], rng: np.random.Generator) -> pd.DataFrame:
    """One row per application (``counts`` per incentive and person): person, school year, day."""
    parts = []
    for incentive, per_person in counts.items():
        pid = np.repeat(np.arange(n), per_person)
        order_in_person = np.arange(len(pid)) - np.repeat(np.cumsum(per_person) - per_person, per_person)
        parts.append(pd.DataFrame({"pid": pid, "incentive": incentive, "k": order_in_person}))
    apps = pd.concat(parts, ignore_index=True)
    m = len(apps)
    # a person's applications of one incentive come in non-decreasing school years
    apps["year_idx"] = rng.integers(0, len(_YEARS), m)
    apps = apps.sort_values(["pid", "incentive", "year_idx"], kind="stable").reset_index(drop=True)
    start_days = (np.array([np.datetime64(f"{2019 + y}-09-01") for y in range(len(_YEARS))]) - np.datetime64("1970-01-01")).astype(int)
    apps["day"] = start_days[apps["year_idx"].to_numpy()] + rng.integers(0, 365, m)
    return apps


def _trainings(n: int, inc: np.ndarray, pop_app: np.ndarray, p: SynthParams, rng: np.random.Generator) -> _Trainings:
    """The training catalogue and the training of each application (its record decides domain and databank flag)."""
    m = len(inc)
    n_train = max(400, min(6000, n // 40))
    t_domain = rng.choice(len(_DOMAINS), n_train)
    t_in_db = rng.random(n_train) < 0.85
    dom_p = {
        "OC": (0.08, 0.03, 0.25, 0.25, 0.15, 0.12, 0.07, 0.05),
        "VOV": (0.20, 0.08, 0.15, 0.10, 0.20, 0.15, 0.07, 0.05),
        "VAPOK": (0.25, 0.20, 0.12, 0.08, 0.12, 0.13, 0.05, 0.05),
        "POP": (0.30, 0.25, 0.10, 0.06, 0.07, 0.12, 0.03, 0.07),
    }
    app_dom = np.empty(m, dtype=int)
    for key in ("OC", "VOV", "VAPOK"):
        sel = (inc == key) & ~pop_app
        app_dom[sel] = rng.choice(len(_DOMAINS), sel.sum(), p=dom_p[key])
    app_dom[pop_app] = rng.choice(len(_DOMAINS), pop_app.sum(), p=dom_p["POP"])
    in_db = np.ones(m, dtype=bool)
    in_db[pop_app] = rng.random(pop_app.sum()) >= p.pop_outside_databank
    train_idx = np.empty(m, dtype=int)
    for d in range(len(_DOMAINS)):
        for flag in (True, False):
            cell = np.flatnonzero((t_domain == d) & (t_in_db == flag))
            if len(cell) == 0:
                cell = np.flatnonzero(t_domain == d) if (t_domain == d).any() else np.arange(n_train)
            sel = np.flatnonzero((app_dom == d) & (in_db == flag))
            train_idx[sel] = cell[rng.integers(0, len(cell), len(sel))]
    # the training's own record decides the databank flag and domain (keeps the POP
    # outside-databank share honest: POP-based with in-db training as drawn)
    return _Trainings(count=n_train, training=train_idx, domain=t_domain[train_idx], in_db=t_in_db[train_idx])


# ---------------------------------------------------------------------------- VDAB trajectories


def _vdab_trajectories(people: _Persons, apps: _Applications, p: SynthParams, rng: np.random.Generator) -> _Trajectories:
    """VDAB trajectories: career guidance (loopbaancheques) and POP-attests."""
    n = len(people.person_key)
    pop_person = np.zeros(n, dtype=bool)
    pop_person[apps.pid[apps.pop & ~apps.refused]] = True
    lbc_other = people.has_lbc & ~pop_person
    k_link = round(p.lbc_to_pop_share * lbc_other.sum() / (1 - p.lbc_to_pop_share))
    pop_ids = np.flatnonzero(pop_person)
    k_link = min(k_link, len(pop_ids))
    linked_pop = rng.choice(pop_ids, size=k_link, replace=False) if k_link else np.array([], dtype=int)
    has_lbc_final = lbc_other.copy()
    has_lbc_final[linked_pop] = True

    # first approved POP-based application per linked person
    app_tab = pd.DataFrame({"pid": apps.pid, "day": apps.day, "pop": apps.pop & ~apps.refused, "train": apps.trainings.training})
    first_pop = app_tab[app_tab["pop"]].sort_values(["pid", "day"], kind="stable").drop_duplicates("pid")
    first_pop = first_pop.set_index("pid").reindex(linked_pop)
    lt_pid = np.concatenate([linked_pop, np.flatnonzero(lbc_other)])
    nl = len(lt_pid)
    is_linked = np.arange(nl) < len(linked_pop)
    end_day = np.empty(nl, dtype=np.int64)
    end_day[is_linked] = first_pop["day"].to_numpy() - rng.integers(7, 400, is_linked.sum())
    win_lo = (np.datetime64("2017-09-01") - np.datetime64("1970-01-01")).astype(int)
    win_hi = (np.datetime64("2024-08-31") - np.datetime64("1970-01-01")).astype(int)
    end_day[~is_linked] = rng.integers(win_lo + 60, win_hi + 120, (~is_linked).sum())
    start_day = end_day - rng.integers(20, 200, nl)
    pop_made = np.where(is_linked, True, rng.random(nl) < 0.97)
    pop_attest = np.where(is_linked, True, pop_made & (rng.random(nl) < 0.25))
    n_train = apps.trainings.count
    attest_train = np.where(pop_attest, rng.integers(0, n_train, nl), -1)
    mismatch = rng.random(nl) < p.attest_mismatch
    attest_train[is_linked] = np.where(
        mismatch[is_linked], rng.integers(0, n_train, is_linked.sum()), first_pop["train"].to_numpy()
    )
    centre_w = 1.0 / np.arange(1, 121) ** 0.8
    centre = rng.choice(120, nl, p=centre_w / centre_w.sum())
    order = np.lexsort((lt_pid, start_day))
    traj = pd.DataFrame(
        {
            "trajectory_id": [f"LBT{i:08d}" for i in range(1, nl + 1)],
            "person_key": people.person_key[lt_pid[order]],
            "start_date": _dates(start_day[order]),
            "end_date": _dates(end_day[order]),
            "loopbaancentrum": [f"LBC{c + 1:03d}" for c in centre[order]],
            "pop_made": pop_made[order].astype(int),
            "pop_attest": pop_attest[order].astype(int),
            "attest_training_id": [f"OPL{t + 1:06d}" if t >= 0 else None for t in attest_train[order]],
        }
    )
    ongoing = end_day[order] > win_hi
    traj.loc[ongoing, "end_date"] = pd.NaT
    return _Trajectories(frame=traj, has_lbc=has_lbc_final, linked_pop=linked_pop)


# ---------------------------------------------------------------------------- DWSE extract


def _dwse_extract(people: _Persons, apps: _Applications) -> pd.DataFrame:
    """The DWSE extract: one row per application."""
    pid = apps.pid
    app_order = np.lexsort((pid, apps.day))
    inc_prefix = {"OC": "OC", "VOV": "VOV", "VAPOK": "VAPOK"}
    years_s = np.array(_YEARS)[apps.year_idx]
    dwse = pd.DataFrame(
        {
            "application_id": "",
            "person_key": people.person_key[pid],
            "incentive": apps.incentive,
            "school_year": years_s,
            "application_date": _dates(apps.day),
            "status": np.where(apps.refused, "geweigerd", "goedgekeurd"),
            "training_id": [f"OPL{t + 1:06d}" for t in apps.trainings.training.tolist()],
            "training_domain": np.array(_DOMAINS)[apps.trainings.domain],
            "in_databank": apps.trainings.in_db.astype(int),
            "pop_based": apps.pop.astype(int),
            "sex": np.where(people.woman[pid], "V", "M"),
            "birth_year": people.birth_year[pid],
            "educ": np.array(_EDUC)[apps.educ],
            "nace": np.array(_NACE)[people.nace[pid]],
            "sector": np.array(_SECTORS)[people.sector[pid]],
            "company_size": np.array(_SIZES)[apps.size],
            "province": np.array(_PROV)[people.province[pid]],
            "statute": np.array(_STAT)[people.statute[pid]],
        }
    ).iloc[app_order].reset_index(drop=True)
    # numbered from 1 within incentive and school year, in date order
    number = dwse.groupby(["incentive", "school_year"], sort=False).cumcount().to_numpy() + 1
    dwse["application_id"] = [
        f"{inc_prefix[i_]}-{y[:4]}-{c:07d}" for i_, y, c in zip(dwse["incentive"].tolist(), dwse["school_year"].tolist(), number.tolist(), strict=True)
    ]
    return dwse


# ---------------------------------------------------------------------------- the study population: OC users


def _study_population(people: _Persons, apps: _Applications, p: SynthParams, rng: np.random.Generator, rng_h: np.random.Generator) -> _StudyPopulation:
    """The study population (OC users): potential outcomes, sampling and response."""
    oc_pid = np.flatnonzero(apps.oc_user)
    D = apps.pop_oc[oc_pid]
    x_educ, x_band, x_sector, x_woman, x_size = people.educ[oc_pid], people.band[oc_pid], people.sector[oc_pid], people.woman[oc_pid], people.size[oc_pid]
    n_pop = len(oc_pid)
    # potential outcomes
    person_eff = rng.normal(0.0, p.sd_person, n_pop)
    y0 = np.empty((n_pop, 4), dtype=int)
    y1 = np.empty((n_pop, 4), dtype=int)
    cuts = np.asarray(p.cuts)
    ps = apps.ps_oc[oc_pid]
    lg = np.log(ps / (1 - ps))
    z_ps = (lg - lg.mean()) / (lg.std() or 1.0)
    centre_oc = rng_h.integers(0, 40, n_pop)
    centre_eff = rng_h.normal(0.0, 1.0, 40)[centre_oc] * p.sd_centre
    for k in range(4):
        lin = (
            p.mu[k]
            + np.asarray(p.o_educ[k])[x_educ]
            + np.asarray(p.o_band[k])[x_band]
            + np.asarray(p.o_sector[k])[x_sector]
            + p.o_woman[k] * x_woman
            + np.asarray(p.o_size[k])[x_size]
            + person_eff
            + rng.normal(0.0, 1.0, n_pop)
        )
        lin = (
            lin
            + p.o_age_exact * people.age_dev[oc_pid]
            + p.o_interaction * ((x_band == 0) & (x_sector == 3))
            + p.o_hidden * people.hidden[oc_pid]
        )
        tau_i = p.tau[k] * (1 + p.tau_ps * z_ps) + centre_eff
        y0[:, k] = 1 + np.searchsorted(cuts, lin, side="right")
        y1[:, k] = 1 + np.searchsorted(cuts, lin + tau_i, side="right")
    y_obs = np.where(D[:, None], y1, y0)

    # sampling and response
    samp_p = np.where(D, p.sample_frac_pop, p.sample_frac_nonpop)
    sampled = rng.random(n_pop) < samp_p
    resp_p = np.minimum(
        0.95,
        p.resp_base
        * np.exp(
            np.asarray(p.r_educ)[x_educ]
            + np.asarray(p.r_band)[x_band]
            + p.r_woman * x_woman
            + np.asarray(p.r_size)[x_size]
            + p.r_pop * D
            + p.r_pop_high * (D & (x_educ == 2))
            + p.r_outcome * (y_obs.mean(axis=1) - 3.0)
        ),
    )
    responded = sampled & (rng.random(n_pop) < resp_p)
    return _StudyPopulation(
        pid=oc_pid,
        pop=D,
        educ=x_educ,
        band=x_band,
        sector=x_sector,
        woman=x_woman,
        size=x_size,
        centre=centre_oc,
        y0=y0,
        y1=y1,
        y_obs=y_obs,
        sample_p=samp_p,
        sampled=sampled,
        response_p=resp_p,
        responded=responded,
    )


# ---------------------------------------------------------------------------- the survey: participants and responses


def _survey(people: _Persons, study: _StudyPopulation, has_lbc: np.ndarray, dwse: pd.DataFrame, p: SynthParams, rng: np.random.Generator) -> _Survey:
    """The invited sample as LimeSurvey participants, and their responses as LimeSurvey exports them."""
    inv = np.flatnonzero(study.sampled)
    n_inv = len(inv)
    inv = inv[rng.permutation(n_inv)]
    tokens = _tokens(rng, n_inv + 64 + n_inv // 50)
    participants = _participants(people.person_key[study.pid[inv]].copy(), tokens, p, rng)

    # responses
    resp_rows: list[dict[str, object]] = []
    tok_of = {int(unit): tokens[i] for i, unit in enumerate(inv)}
    resp_units = [int(unit) for unit in inv if study.responded[unit]]
    # latest OC application per person for the training questions
    oc_apps = dwse[(dwse["incentive"] == "OC") & (dwse["status"] == "goedgekeurd")].drop_duplicates("person_key", keep="last")
    oc_dom = dict(zip(oc_apps["person_key"], oc_apps["training_domain"], strict=True))
    respondent = _Respondents(people=people, study=study, has_lbc=has_lbc, oc_domain=oc_dom)
    for unit in resp_units:
        row, start_end = _response_row(respondent, unit, tok_of[unit], p, rng)
        resp_rows.append(row)
        if row["submitdate"] is not None and rng.random() < p.duplicate_p:
            resp_rows.append(_duplicate_submission(row, start_end, rng))
    n_orphans = int(rng.binomial(len(resp_units), p.orphan_response_p)) if resp_units else 0
    for j in range(n_orphans):
        base = dict(resp_rows[int(rng.integers(0, len(resp_rows)))])
        base["token"] = tokens[n_inv + j]
        resp_rows.append(base)
    resp_rows.sort(key=lambda r: (str(r["startdate"]), str(r["token"])))
    for i, r in enumerate(resp_rows, start=1):
        r["id"] = i
    header = ["id", "submitdate", "lastpage", "startlanguage", "seed", "token", "startdate", "datestamp", *QUESTIONNAIRE.answer_columns()]
    return _Survey(header=header, participants=participants, rows=resp_rows, invited=n_inv)


def _participants(part_key: np.ndarray, tokens: list[str], p: SynthParams, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The participants table: one per invitation, a few with a key that no longer links."""
    n_inv = len(part_key)
    stale = rng.random(n_inv) < p.unlinked_participant_p
    if stale.any():
        part_key[stale] = _keys(rng, int(stale.sum()))
    return [
        {
            "tid": i + 1,
            "token": tokens[i],
            "participant_info": {"firstname": "", "lastname": "", "email": f"deelnemer{i + 1:06d}@example.invalid"},
            "attribute_1": str(part_key[i]),
        }
        for i in range(n_inv)
    ]


@dataclass(frozen=True)
class _Respondents:
    """What a response row is drawn from: the persons, the study population and their records."""

    people: _Persons
    study: _StudyPopulation
    #: per person: a loopbaancheque trajectory in the VDAB extract
    has_lbc: np.ndarray
    #: person key -> training domain of the person's latest approved OC application
    oc_domain: dict[str, str]


#: the fieldwork: from 8 May 2023, 07:00, for 53 days
_FIELD_START = int((np.datetime64("2023-05-08T07:00:00") - np.datetime64("1970-01-01T00:00:00")).astype(int))
_FIELD_SECONDS = 53 * 86400
_STAMP = "%Y-%m-%d %H:%M:%S"


def _response_row(r: _Respondents, unit: int, token: str, p: SynthParams, rng: np.random.Generator) -> tuple[dict[str, object], int]:
    """One respondent's row, page by page up to the last page reached, and the time it was submitted."""
    start = _FIELD_START + int(rng.integers(0, _FIELD_SECONDS))
    dur = int(rng.integers(240, 1800))
    complete = rng.random() >= p.incomplete_p
    lastpage = 4 if complete else int(rng.integers(1, 4))
    row: dict[str, object] = dict.fromkeys(QUESTIONNAIRE.answer_columns())
    stamp = pd.Timestamp(start, unit="s")
    done = pd.Timestamp(start + dur, unit="s")
    row.update(
        {
            "submitdate": done.strftime(_STAMP) if complete else None,
            "lastpage": lastpage,
            "startlanguage": "nl" if rng.random() > 0.03 else "en",
            "seed": str(int(rng.integers(10_000_000, 2_000_000_000))),
            "token": token,
            "startdate": stamp.strftime(_STAMP),
            "datestamp": done.strftime(_STAMP),
        }
    )
    i_pid = int(r.study.pid[unit])
    treated = bool(r.study.pop[unit])
    if lastpage >= 1:
        row.update(_page_training(r, i_pid, treated, rng))
    if lastpage >= 2:
        guided = r.has_lbc[i_pid] or (treated and rng.random() < 0.85)
        if rng.random() < 0.04:
            guided = not guided
        row["GUIDANCE"] = "Y" if guided else "N"
        said_pop = (rng.random() < 0.88) if treated else (rng.random() < 0.04)
        row["POPUSED"] = "Y" if said_pop else "N"
    if lastpage >= 3:
        row.update(_page_outcomes(r.study.y_obs[unit], p, rng))
    if lastpage >= 4:
        row.update(_page_about(r.people, i_pid, rng))
    return row, start + dur


def _page_training(r: _Respondents, i_pid: int, treated: bool, rng: np.random.Generator) -> dict[str, object]:
    """Page 1: the incentives used and the training (domain, hours)."""
    has_vov, has_vapok = r.people.has_vov[i_pid], r.people.has_vapok[i_pid]
    dom = r.oc_domain.get(r.people.person_key[i_pid], "OVERIG")
    if rng.random() < 0.05:
        dom = _DOMAINS[int(rng.integers(0, len(_DOMAINS)))]
    code = _DOMAIN_TO_CODE[dom]
    other = _OTHER_DOMAIN[int(rng.integers(0, len(_OTHER_DOMAIN)))] if code == "-oth-" else None
    hours = np.exp(rng.normal(np.log(60 if treated else 24), 0.6))
    return {
        "INCENTIVE[SQ001]": "Y",
        "INCENTIVE[SQ002]": "Y" if has_vov else "",
        "INCENTIVE[SQ003]": "Y" if has_vapok else "",
        "INCENTIVE[SQ004]": "" if (has_vov or has_vapok) else "Y",
        "TRAINDOMAIN": code,
        "TRAINDOMAIN[other]": other,
        "HOURS": str(int(max(4, min(600, round(hours))))),
    }


def _page_outcomes(y_obs: np.ndarray, p: SynthParams, rng: np.random.Generator) -> dict[str, object]:
    """Page 3: the outcomes, with 'weet niet' (99), informative when ``dk_outcome`` is set."""
    answers: dict[str, object] = {}
    for k, o in enumerate(OUTCOMES):
        q = p.dont_know_p[k]
        if p.dk_outcome:
            odds = q / (1 - q) * np.exp(p.dk_outcome * max(0.0, 3.0 - float(y_obs[k])))
            q = odds / (1 + odds)
        dk = rng.random() < q
        answers[o.column] = "99" if dk else str(int(y_obs[k]))
    return answers


def _page_about(people: _Persons, i_pid: int, rng: np.random.Generator) -> dict[str, object]:
    """Page 4: sex, birth year and education as the respondent reports them (with a few errors)."""
    g = "V" if people.woman[i_pid] else "M"
    gender = "X" if rng.random() < 0.02 else g
    birth_year = None if rng.random() < 0.03 else str(int(people.birth_year[i_pid]))
    e = int(people.educ[i_pid])
    if rng.random() < 0.08:
        e = int(np.clip(e + rng.choice([-1, 1]), 0, 2))
    remarks = _REMARKS[int(rng.integers(0, len(_REMARKS)))] if rng.random() < 0.2 else ""
    return {"GENDER": gender, "BIRTHYEAR": birth_year, "EDUC": _EDUC_CODE[e], "REMARKS": remarks}


_EDUC_CODE = ("L", "M", "H")


def _duplicate_submission(row: dict[str, object], submitted: int, rng: np.random.Generator) -> dict[str, object]:
    """A second submission of a complete response, later, with one outcome answered one point off."""
    dup = dict(row)
    later_ts = pd.Timestamp(submitted + int(rng.integers(3600, 7 * 86400)), unit="s")
    dup["startdate"] = (later_ts - pd.Timedelta(seconds=300)).strftime(_STAMP)
    dup["submitdate"] = later_ts.strftime(_STAMP)
    dup["datestamp"] = dup["submitdate"]
    dup["seed"] = str(int(rng.integers(10_000_000, 2_000_000_000)))
    k = int(rng.integers(0, 4))
    old = dup[OUTCOMES[k].column]
    if old not in (None, "99"):
        dup[OUTCOMES[k].column] = str(int(np.clip(int(str(old)) + rng.choice([-1, 1]), 1, 5)))
    return dup


# ---------------------------------------------------------------------------- truth


def _truth_record(people: _Persons, apps: _Applications, traj: _Trajectories, study: _StudyPopulation, p: SynthParams, seed: int) -> dict[str, object]:
    """The known truth of the study population: estimands and their ingredients."""
    D, y0, y1, y_obs, x_educ = study.pop, study.y0, study.y1, study.y_obs, study.educ
    att_lik = (y1[D] - y0[D]).mean(axis=0)
    att_top2 = ((y1[D] >= 4).astype(float) - (y0[D] >= 4).astype(float)).mean(axis=0)
    ate_lik = (y1 - y0).mean(axis=0)
    return {
        "description": "Ground truth of the synthetic study. The pipeline never reads this folder.",
        "seed": seed,
        "persons": len(people.person_key),
        "population": "persons with an approved opleidingscheque application (school years 2019-20 to 2023-24)",
        "population_size": study.n,
        "treated": int(D.sum()),
        "outcomes": {
            o.name: {
                "att_likert": float(att_lik[k]),
                "att_top2": float(att_top2[k]),
                "ate_likert": float(ate_lik[k]),
                "population_mean": float(y_obs[:, k].mean()),
                "population_mean_treated": float(y_obs[D, k].mean()),
                "population_mean_control": float(y_obs[~D, k].mean()),
                "naive_difference": float(y_obs[D, k].mean() - y_obs[~D, k].mean()),
                "tau_latent": float(p.tau[k]),
                "att_likert_by_educ": {
                    _EDUC[e]: float((y1[D & (x_educ == e), k] - y0[D & (x_educ == e), k]).mean())
                    for e in range(len(_EDUC)) if (D & (x_educ == e)).any()
                },
            }
            for k, o in enumerate(OUTCOMES)
        },
        "intercepts": {"pop_oc": apps.a_oc, "pop_vov": apps.a_vov, "pop_vapok": apps.a_vapok},
        "linked_pop_persons": len(traj.linked_pop),
        "params": asdict(p),
    }


def _truth_units(people: _Persons, apps: _Applications, study: _StudyPopulation) -> pd.DataFrame:
    """The study population's units with their propensities, potential outcomes and survey flags."""
    return pd.DataFrame(
        {
            "person_key": people.person_key[study.pid],
            "pop": study.pop,
            "educ": np.array(_EDUC)[study.educ],
            "sector": np.array(_SECTORS)[study.sector],
            "sex": np.where(study.woman, "V", "M"),
            "company_size": np.array(_SIZES)[study.size],
            "centre": study.centre,
            "propensity": apps.ps_oc[study.pid],
            "sample_prob": study.sample_p,
            "response_prob": study.response_p,
            "sampled": study.sampled,
            "responded": study.responded,
            **{f"y0_{o.name}": study.y0[:, k] for k, o in enumerate(OUTCOMES)},
            **{f"y1_{o.name}": study.y1[:, k] for k, o in enumerate(OUTCOMES)},
        }
    )


# ---------------------------------------------------------------------------- write


def _write_admin(out: Path, dwse: pd.DataFrame, traj: pd.DataFrame, file_format: str, person_key: np.ndarray, fake_keys: np.ndarray | None) -> dict[str, str]:
    """Write the admin extracts (with raw INSZ numbers for the keys if ``fake_keys``); their hashes."""
    files: dict[str, str] = {}
    admin = out / "admin"
    admin.mkdir(parents=True, exist_ok=True)
    if fake_keys is not None:
        mapping = dict(zip(person_key, fake_keys, strict=True))
        dwse = dwse.assign(person_key=dwse["person_key"].map(mapping))
        traj = traj.assign(person_key=traj["person_key"].map(mapping))
    for name, frame in (("dwse_applications", dwse), ("vdab_trajectories", traj)):
        path = admin / f"{name}.{file_format}"
        _write_table(frame, path)
        files[str(path.relative_to(out))] = sha256_file(path)
    return files


def _write_survey(out: Path, survey: _Survey) -> dict[str, str]:
    """Write the survey as a snapshot (and the invitation list); their hashes."""
    files: dict[str, str] = {}
    snap = out / "survey" / str(DEMO_SURVEY_ID) / DEMO_SNAPSHOT
    resp_rows, participants = survey.rows, survey.participants
    snap_files = {"responses.csv": write_csv_export(survey.header, resp_rows), "participants.json": php_json_dumps(participants).encode("utf-8")}
    max_id = len(resp_rows)
    manifest: dict[str, Any] = {
        "survey_id": DEMO_SURVEY_ID,
        "server_version": "demo (synthetic; LimeSurvey 6 export format)",
        "fetched_at_utc": "2023-07-04T08:00:00Z",
        "export": {"document_type": "csv", "heading_type": "code", "response_type": "short", "completion_status": "all"},
        "from_id": 1 if max_id else None,
        "to_id": max_id or None,
        "counts": {"responses": len(resp_rows), "complete": survey.complete, "participants": len(participants)},
        "previous": None,
    }
    from survey.snapshot import publish_snapshot

    # written like every snapshot: file by file into a temporary folder, renamed when complete
    publish_snapshot(snap, snap_files, manifest, read_only=False)
    for f in ("responses.csv", "participants.json", "manifest.json"):
        files[str((snap / f).relative_to(out))] = sha256_file(snap / f)
    invite = pd.DataFrame(
        {"attribute_1": [pp["attribute_1"] for pp in participants], "email": [pp["participant_info"]["email"] for pp in participants], "language": "nl"}
    )
    (out / "survey").mkdir(parents=True, exist_ok=True)
    invite.to_csv(out / "survey" / "invitations.csv", index=False, lineterminator="\n")
    files["survey/invitations.csv"] = sha256_file(out / "survey" / "invitations.csv")
    return files


def _write_truth(out: Path, truth: dict[str, object], units: pd.DataFrame) -> dict[str, str]:
    """Write ``truth/`` (never read by the pipeline); its hashes."""
    tdir = out / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    (tdir / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _write_table(units, tdir / "units.parquet")
    return {"truth/truth.json": sha256_file(tdir / "truth.json"), "truth/units.parquet": sha256_file(tdir / "units.parquet")}


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        tab = pa.Table.from_pandas(frame, preserve_index=False)
        tab = tab.replace_schema_metadata(None)
        pq.write_table(tab, path, compression="zstd")
    else:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        tab = pa.Table.from_pandas(frame, preserve_index=False)
        cols = []
        for name in tab.column_names:
            col = tab[name]
            if pa.types.is_timestamp(col.type):
                col = col.cast(pa.date32())
            cols.append(col)
        tab = pa.table(cols, names=tab.column_names)
        pacsv.write_csv(tab, path, write_options=pacsv.WriteOptions(quoting_style="needed", batch_size=1 << 16))
