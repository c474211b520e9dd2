"""The study configuration: one TOML file states the whole specification of a run.

:func:`load_config` reads and validates it; every unknown or invalid setting is a
:class:`~survey.errors.ConfigError` that names the setting, lists the allowed values and gives a hint.
Paths in the file are relative to the file's folder.

Example (``studies/demo.toml``)::

    [study]
    name = "demo"
    seed = 2023
    language = "nl"
    disclosure_threshold = 5

    [survey]
    survey_id = 461283
    snapshot = "latest"          # a snapshot folder, "latest" under snapshots_dir, or "fetch"

    [admin]
    dwse = "../data_raw/demo/admin/dwse_applications.csv"
    vdab = "../data_raw/demo/admin/vdab_trajectories.csv"
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from analysis.population.mapping import InputSpec
from survey.errors import ConfigError

__all__ = [
    "COVARIATES",
    "EFFECT_METHODS",
    "AdminConfig",
    "EffectsConfig",
    "MatchingConfig",
    "PlansConfig",
    "ReportConfig",
    "StudyConfig",
    "StudySection",
    "SurveyConfig",
    "WeightingConfig",
    "load_config",
]

#: Person characteristics available for margins, propensity scores and matching.
COVARIATES = ("pop", "educ", "age_band", "sex", "sector", "company_size", "province", "statute", "guidance")
_OUTCOMES = ("stronger", "job_better", "promotion", "satisfaction")
#: Fewer end-to-end replicates (other than 0) cannot estimate a standard error and are refused;
#: ``popeval run`` warns below 30 (analysis.pipeline.ADVISED_REPLICATES).
MIN_REPLICATES = 4


@dataclass(frozen=True)
class StudySection:
    """``[study]``: name, seed, language of the report, disclosure threshold, output folder."""

    name: str = "study"
    seed: int = 2023
    language: str = "nl"
    disclosure_threshold: int = 5
    derived_dir: str = "data_derived"
    #: The study window as school years (``["2021-22", "2022-23"]``); empty: 2019-20 to 2023-24.
    school_years: tuple[str, ...] = ()
    #: Allows ``disclosure_threshold = 1``, which suppresses no count (never for a published report);
    #: the run then warns in its summary and run log.
    disable_disclosure_control: bool = False


@dataclass(frozen=True)
class SurveyConfig:
    """``[survey]``: which survey and which snapshot of it, and how to read an existing survey.

    ``participants`` is a participants file to use instead of the snapshot's ``participants.json``
    (LimeSurvey's GUI CSV export or the RC2 JSON); ``key_attribute`` the attribute holding the person
    key.  ``[survey.columns]`` and ``[survey.answers.<variable>]`` map an existing survey's columns
    and answer codes onto popeval's (:class:`survey.mapping.SurveyMapping`).
    """

    survey_id: int = 0
    snapshot: str = "latest"
    snapshots_dir: str = "data_raw/survey"
    participants: str = ""
    key_attribute: str = "attribute_1"
    columns: Mapping[str, str] = field(default_factory=dict)
    answers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: ``[survey.outcomes.<name>]``: Dutch/English labels and scale direction of an outcome.
    outcomes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def mapping(self) -> Any:
        """The questionnaire mapping (:class:`survey.mapping.SurveyMapping`)."""
        from survey.mapping import SurveyMapping

        return SurveyMapping(columns=self.columns, answers=self.answers, outcomes=self.outcomes)

    def outcome_names(self) -> tuple[str, ...]:
        """The survey's outcomes: popeval's four, or the study's own from ``[survey.outcomes]``."""
        return tuple(o.name for o in self.mapping().outcome_list())


@dataclass(frozen=True)
class AdminConfig:
    """``[admin]``: the DWSE and VDAB extracts.

    ``dwse`` and ``vdab`` are paths of files in popeval's own schema, or tables ``[admin.dwse]`` /
    ``[admin.vdab]`` describing a file as delivered (format, reading settings, column mapping, code
    tables, rules: :class:`analysis.population.mapping.InputSpec`).
    """

    dwse: str = "data_raw/admin/dwse_applications.csv"
    vdab: str = "data_raw/admin/vdab_trajectories.csv"
    pseudonymise: bool = False
    dwse_input: InputSpec = field(default_factory=InputSpec)
    vdab_input: InputSpec = field(default_factory=InputSpec)


@dataclass(frozen=True)
class WeightingConfig:
    """``[weighting]``: margins and method; replicate design for the variance."""

    method: str = "rake"
    margins: tuple[tuple[str, ...], ...] = (("pop", "educ"), ("pop", "age_band"), ("pop", "sex"), ("pop", "sector"), ("pop", "company_size"))
    min_cell: int = 5
    trim_upper: float | None = None
    max_iter: int = 200
    tolerance: float = 1e-10


@dataclass(frozen=True)
class MatchingConfig:
    """``[matching]``: the propensity score and the matching specification."""

    covariates: tuple[str, ...] = ("educ", "age_band", "sex", "sector", "company_size")
    ratio: int = 1
    replace: bool = True
    #: Caliper in SDs of the propensity score: the score on the probability scale (not the logit),
    #: its SD unweighted (no survey weights) over all respondents in the design, both groups
    #: (MatchIt's ``std.caliper``).  0.2 SD is about 0.2 x 0.1 = 0.02 in probability on the demo.
    caliper: float | None = 0.2
    m_order: str = "largest"
    exact: tuple[str, ...] = ()
    distance: str = "glm"
    survey_weights: str = "keep"
    #: Fit the matching's propensity score with the survey weights (as MatchIt does with
    #: ``s.weights``); ``false`` fits it unweighted.  The matching's combined weights use the survey
    #: weights either way.
    weighted_propensity: bool = True
    #: Controls equally near a treated unit (within ``tie_tolerance``): ``"all"`` uses every tied
    #: control with a shared weight (Abadie-Imbens; needs ``replace = true``), ``"label"`` takes
    #: one, chosen by respondent id, ``"matchit"`` reproduces MatchIt's rule (depends on row order).
    ties: str = "all"
    #: Propensity scores (probability scale) differing by at most this much are ties.
    tie_tolerance: float = 1e-8
    #: The estimand's support: ``"comparable"`` (default) estimates the ATT among the POP users
    #: who have comparable users without a POP and names the excluded group; ``"all"`` keeps every
    #: POP user (the excluded ones then rest on extrapolation).  Decided before outcomes are read.
    support: str = "comparable"
    #: Propensity rule after the cell rule: ``"minmax"`` (POP users above the largest control
    #: score are outside), ``"crump"`` (scores outside [trim_alpha, 1 - trim_alpha]) or ``"none"``.
    overlap_rule: str = "minmax"
    #: A covariate category with fewer control respondents than this (or fewer than
    #: ``min_control_ratio`` per POP respondent) has no comparable controls.
    min_controls: int = 10
    min_control_ratio: float = 0.1
    #: Crump et al.'s trimming threshold for ``overlap_rule = "crump"``.
    trim_alpha: float = 0.1


@dataclass(frozen=True)
class EffectsConfig:
    """``[effects]``: outcomes, estimand, methods and the replicate variance."""

    #: The outcomes analysed: by default every outcome of the survey (popeval's four, or the ones
    #: ``[survey.outcomes.<name>]`` defines); a subset analyses only those.
    outcomes: tuple[str, ...] = _OUTCOMES
    estimand: str = "ATT"
    #: Must include "matching", the main estimator; a secondary method that cannot be estimated on
    #: an outcome is reported as not estimable (with the reason) instead of stopping the run.
    methods: tuple[str, ...] = ("matching", "regression", "ipw", "aipw", "ologit")
    #: End-to-end replicates for the standard errors: 0 (model-based only) or at least
    #: ``MIN_REPLICATES`` (4); fewer than 30 gives a warning, 100 or more for publication.
    replicates: int = 100
    #: Finite-population correction in the replicates. Off by default: the estimand (the ATT among all
    #: POP users in the population) includes the unobserved Y(0) of non-responding POP users, which no
    #: replicate can reproduce; the correction would then make the standard errors too small.
    fpc: bool = False
    workers: int = 2


@dataclass(frozen=True)
class ReportConfig:
    """``[report]``: which formats to render."""

    formats: tuple[str, ...] = ("html", "pdf", "docx")
    render: bool = True


@dataclass(frozen=True)
class PlansConfig:
    """``[plans]``: reading the POPs (texts, sample, coders; see :mod:`analysis.plans`).

    ``texts`` is a folder of .txt/.docx/.pdf files named after the trajectory, or a .csv/.parquet
    table with ``id_column`` and ``text_column``; empty means the study has no POP part.
    ``trainings`` is the training catalogue (``training_id``, ``training_name``).  ``previous`` is the
    previous wave's bundle (optional).
    """

    texts: str = ""
    id_column: str = "trajectory_id"
    text_column: str = "text"
    trainings: str = ""
    population: str = "attest"
    strata: tuple[str, ...] = ("incentive",)
    sample_size: int = 300
    allocation: str = "equal"
    min_per_stratum: int = 2
    coders: tuple[str, ...] = ("A", "B")
    match_threshold: float = 85.0
    bootstrap: int = 1000
    previous: str = ""


@dataclass(frozen=True)
class StudyConfig:
    """The whole specification of a run."""

    study: StudySection = field(default_factory=StudySection)
    survey: SurveyConfig = field(default_factory=SurveyConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    effects: EffectsConfig = field(default_factory=EffectsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    plans: PlansConfig = field(default_factory=PlansConfig)
    base_dir: Path = field(default=Path("."), compare=False)
    source: Path | None = field(default=None, compare=False)

    def path(self, value: str) -> Path:
        """A path from the file, resolved against the file's folder."""
        p = Path(value)
        return p if p.is_absolute() else (self.base_dir / p)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (no paths of this machine)."""
        d = asdict(self)
        d.pop("base_dir")
        d.pop("source")
        return json.loads(json.dumps(d, default=str))

    def section_hash(self, *sections: str) -> str:
        """SHA-256 of the named sections' settings (for caching)."""
        d = self.to_dict()
        blob = json.dumps({s: d[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


_SECTIONS = {
    "study": StudySection,
    "survey": SurveyConfig,
    "admin": AdminConfig,
    "weighting": WeightingConfig,
    "matching": MatchingConfig,
    "effects": EffectsConfig,
    "report": ReportConfig,
    "plans": PlansConfig,
}

#: Fields filled from other settings, not written in the TOML themselves.
_NOT_SETTINGS: dict[str, tuple[str, ...]] = {"admin": ("dwse_input", "vdab_input"), "survey": ("columns", "answers", "outcomes")}

_CHOICES: dict[tuple[str, str], tuple[Any, ...]] = {
    ("study", "language"): ("nl", "en"),
    ("weighting", "method"): ("rake", "poststratify", "linear", "logit", "none"),
    ("matching", "m_order"): ("largest", "smallest", "random", "data"),
    ("matching", "distance"): ("glm", "mahalanobis"),
    ("matching", "survey_weights"): ("keep", "inherit"),
    ("matching", "ties"): ("all", "label", "matchit"),
    ("matching", "support"): ("comparable", "all"),
    ("matching", "overlap_rule"): ("minmax", "crump", "none"),
    ("effects", "estimand"): ("ATT", "ATE"),
    ("plans", "population"): ("attest", "all"),
    ("plans", "allocation"): ("equal", "proportional"),
}
#: The estimation methods (``effects.methods``); ``analysis.estimation.METHODS`` implements them.
EFFECT_METHODS = ("matching", "regression", "ipw", "aipw", "ologit", "absorbed", "naive")

_LIST_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("matching", "covariates"): COVARIATES[1:],
    ("matching", "exact"): COVARIATES[1:],
    ("effects", "outcomes"): _OUTCOMES,
    ("effects", "methods"): EFFECT_METHODS,
    ("report", "formats"): ("html", "pdf", "docx"),
    ("plans", "strata"): ("incentive", "centre_size", "loopbaancentrum", "school_year"),
}


def _fail(section: str, key: str, expected: str, found: Any, hint: str, source: Path | None) -> ConfigError:
    return ConfigError(
        "Invalid setting in the study configuration",
        file=source,
        param=f"{section}.{key}",
        expected=expected,
        found=repr(found),
        hint=hint,
    )


@dataclass(frozen=True)
class _Setting:
    """A setting being read: its section and name, its default, the values allowed, the file it is in."""

    section: str
    key: str
    default: Any
    source: Path | None
    #: The values a list may hold (default: those of :data:`_LIST_CHOICES`).
    allowed: tuple[str, ...] | None = None

    def fail(self, expected: str, found: Any, hint: str) -> ConfigError:
        """The error for a value of this setting that is not ``expected``."""
        return _fail(self.section, self.key, expected, found, hint, self.source)


def _margins(s: _Setting, value: Any) -> tuple[tuple[str, ...], ...]:
    """Margins: each a variable or a list of variables (a joint margin), all among :data:`COVARIATES`."""
    if not isinstance(value, list):
        raise s.fail("a list of variables or of lists of variables", value, 'e.g. margins = [["pop", "educ"], "sex"]')
    out = []
    for m in value:
        items = (m,) if isinstance(m, str) else tuple(m) if isinstance(m, list) else None
        if not items or any(v not in COVARIATES for v in items):
            raise s.fail("variables among " + ", ".join(COVARIATES), m, "a margin is a variable or a list of variables (a joint margin)")
        out.append(items)
    return tuple(out)


def _strings(s: _Setting, value: Any) -> tuple[str, ...]:
    """A list of strings, each among the setting's allowed values when it has them."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise s.fail("a list of strings", value, f"e.g. {s.key} = {list(s.default or ())!r}")
    allowed = s.allowed or _LIST_CHOICES.get((s.section, s.key)) or ()
    for v in value:
        if allowed and v not in allowed:
            hint = f"choose from: {', '.join(allowed)}"
            if (s.section, s.key) == ("effects", "outcomes"):
                hint += f"; an outcome of the study's own is defined in [survey.outcomes.{v}] (nl, en, direction) with its column in [survey.columns]"
            raise s.fail("values among " + ", ".join(allowed), v, hint)
    return tuple(value)


def _boolean(s: _Setting, value: Any) -> bool:
    if not isinstance(value, bool):
        raise s.fail("true or false", value, "write true or false without quotes")
    return value


def _whole(s: _Setting, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise s.fail("a whole number", value, "write a number without quotes")
    return value


def _number(s: _Setting, value: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise s.fail("a number", value, "write a number without quotes")
    return float(value)


def _choice(s: _Setting, value: Any) -> str:
    """A string, one of :data:`_CHOICES` when the setting has a fixed set of values."""
    if not isinstance(value, str):
        raise s.fail("a string", value, "quote the value")
    allowed = _CHOICES.get((s.section, s.key))
    if allowed and value not in allowed:
        raise s.fail("one of " + ", ".join(map(str, allowed)), value, f"choose from: {', '.join(map(str, allowed))}")
    return value


#: How a setting's value is checked and converted, by the type its section's dataclass gives it.
_COERCERS: dict[Any, Callable[[_Setting, Any], Any]] = {
    tuple[tuple[str, ...], ...]: _margins,
    tuple[str, ...]: _strings,
    bool: _boolean,
    int: _whole,
    float: _number,
    float | None: _number,
    str: _choice,
}


def _coerce(section: str, f: Any, typ: Any, value: Any, source: Path | None, allowed: tuple[str, ...] | None = None) -> Any:
    """``value`` of the setting ``f`` (of type ``typ``) in ``section``, checked and converted.

    Raises
    ------
    ConfigError
        Naming the file, the setting, what was expected and found, and how to write it.
    """
    coerce = _COERCERS.get(typ)
    if coerce is None:  # pragma: no cover - every setting's type has a coercer
        return value
    return coerce(_Setting(section=section, key=f.name, default=f.default, source=source, allowed=allowed), value)


def _range_checks(cfg: StudyConfig) -> None:
    src = cfg.source
    checks = [
        (
            "study",
            "disclosure_threshold",
            cfg.study.disclosure_threshold >= 2 or (cfg.study.disclosure_threshold == 1 and cfg.study.disable_disclosure_control),
            "a whole number >= 2 (default 5); 1 suppresses no count and needs disable_disclosure_control = true",
        ),
        ("matching", "ratio", cfg.matching.ratio >= 1, "a whole number >= 1"),
        ("matching", "caliper", cfg.matching.caliper is None or cfg.matching.caliper > 0, "a positive number (SDs of the propensity score: probability scale, unweighted, all respondents)"),
        ("matching", "tie_tolerance", cfg.matching.tie_tolerance >= 0, "a number >= 0, e.g. 1e-8"),
        ("matching", "min_controls", cfg.matching.min_controls >= 1, "a whole number >= 1 (default 10)"),
        ("matching", "min_control_ratio", cfg.matching.min_control_ratio >= 0, "a number >= 0 (default 0.1)"),
        ("matching", "trim_alpha", 0 < cfg.matching.trim_alpha < 0.5, "a number in (0, 0.5), e.g. 0.1"),
        ("matching", "ties", cfg.matching.ties != "all" or cfg.matching.replace, "'label' or 'matchit' when replace = false ('all' needs matching with replacement)"),
        (
            "effects",
            "replicates",
            cfg.effects.replicates == 0 or cfg.effects.replicates >= MIN_REPLICATES,
            f"0 (model-based standard errors only) or at least {MIN_REPLICATES}; 100 or more for publication",
        ),
        ("weighting", "trim_upper", cfg.weighting.trim_upper is None or cfg.weighting.trim_upper > 0, "a positive upper bound on the weights, or leave it out (no trimming)"),
        (
            "survey",
            "survey_id",
            cfg.survey.survey_id > 0 or cfg.survey.snapshot not in ("latest", "fetch"),
            f"the LimeSurvey survey id, a positive whole number (e.g. survey_id = 461283), for snapshot = {cfg.survey.snapshot!r}",
        ),
        ("effects", "workers", cfg.effects.workers >= 1, "a whole number >= 1"),
        ("weighting", "min_cell", cfg.weighting.min_cell >= 1, "a whole number >= 1"),
        ("plans", "sample_size", cfg.plans.sample_size >= 2, "a whole number >= 2"),
        ("plans", "min_per_stratum", cfg.plans.min_per_stratum >= 2, "a whole number >= 2"),
        ("plans", "match_threshold", 0 < cfg.plans.match_threshold <= 100, "a similarity between 0 and 100, e.g. 85"),
        ("plans", "bootstrap", cfg.plans.bootstrap >= 0, "0 (no intervals) or more, e.g. 1000"),
    ]
    for section, key, ok, expected in checks:
        if not ok:
            raise _fail(section, key, expected, getattr(getattr(cfg, section), key), "see studies/demo.toml for an example", src)
    import re

    for y in cfg.study.school_years:
        m = re.fullmatch(r"(\d{4})-(\d{2})", y)
        if not m or (int(m.group(1)) + 1) % 100 != int(m.group(2)):
            raise _fail("study", "school_years", "school years such as 2021-22 (1 September to 31 August)", y, 'e.g. school_years = ["2021-22", "2022-23"]', src)
    if not cfg.matching.covariates:
        raise _fail("matching", "covariates", "at least one covariate", [], "e.g. covariates = ['educ', 'age_band', 'sex']", src)
    if not cfg.effects.outcomes:
        raise _fail("effects", "outcomes", "at least one outcome among " + ", ".join(_OUTCOMES), [], f"e.g. outcomes = {list(_OUTCOMES)!r}", src)
    if "matching" not in cfg.effects.methods:
        raise _fail(
            "effects",
            "methods",
            "a list that includes 'matching' (the main estimator; the others are reported beside it)",
            list(cfg.effects.methods),
            'e.g. methods = ["matching", "regression", "ipw", "aipw", "ologit"]',
            src,
        )


#: Settings that popeval does not offer, with the reason (a study that sets one is refused with it).
RETIRED_SETTINGS: dict[tuple[str, str], str] = {
    ("survey", "server"): (
        "the LimeSurvey server and its credentials come only from the environment "
        "(LIMESURVEY_URL, LIMESURVEY_USER, LIMESURVEY_PASSWORD), never from a file"
    ),
    ("effects", "alpha"): (
        "intervals are 95 % and significance is judged at 5 % (Holm-adjusted): the level at which "
        "bench/known_truth.py validates their coverage and at which the report's text is written"
    ),
}


def config_from_dict(data: Mapping[str, Any], base_dir: Path = Path("."), source: Path | None = None) -> StudyConfig:
    """Build and validate a :class:`StudyConfig` from parsed TOML."""
    unknown = [k for k in data if k not in _SECTIONS]
    if unknown:
        raise ConfigError(
            "Unknown section in the study configuration",
            file=source,
            param=unknown[0],
            expected="sections " + ", ".join(f"[{s}]" for s in _SECTIONS),
            found=f"[{unknown[0]}]",
            hint="check the spelling of the section name",
        )
    kwargs: dict[str, Any] = {}
    outcome_names: tuple[str, ...] = _OUTCOMES
    for name, cls in _SECTIONS.items():
        raw = data.get(name, {})
        if not isinstance(raw, Mapping):
            raise _fail(name, "", "a table", raw, f"write [{name}] followed by key = value lines", source)
        known = {f.name: f for f in fields(cls) if f.name not in _NOT_SETTINGS.get(name, ())}
        specs: dict[str, Any] = {}
        if name == "admin":
            from analysis.population.mapping import input_from_toml
            from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES

            raw = dict(raw)
            for key, table in (("dwse", DWSE_APPLICATIONS), ("vdab", VDAB_TRAJECTORIES)):
                if key in raw:
                    spec = input_from_toml(raw[key], f"admin.{key}", table, source)
                    specs[f"{key}_input"] = spec
                    raw[key] = spec.file
        if name == "survey" and ("columns" in raw or "answers" in raw or "outcomes" in raw):
            from survey.mapping import survey_mapping_from_toml

            raw = dict(raw)
            sm = survey_mapping_from_toml(raw.pop("columns", {}), raw.pop("answers", {}), source, raw.pop("outcomes", {}))
            specs.update(columns=sm.columns, answers=sm.answers, outcomes=sm.outcomes)
            outcome_names = tuple(o.name for o in sm.outcome_list())
        if name == "effects" and outcome_names != _OUTCOMES and "outcomes" not in raw:
            raw = {**raw, "outcomes": list(outcome_names)}  # default: every outcome of the survey
        for key in raw:
            if (name, key) in RETIRED_SETTINGS:
                raise ConfigError(
                    "This setting is not available",
                    file=source,
                    param=f"{name}.{key}",
                    expected=f"no {key!r} in [{name}]",
                    found=f"{key} = {raw[key]!r}",
                    hint=RETIRED_SETTINGS[(name, key)],
                )
            if key not in known:
                raise ConfigError(
                    "Unknown setting in the study configuration",
                    file=source,
                    param=f"{name}.{key}",
                    expected=f"settings of [{name}]: " + ", ".join(known),
                    found=key,
                    hint="check the spelling; every setting is documented in analysis/config.py",
                )
        hints = get_type_hints(cls)
        values = {k: _coerce(name, known[k], hints[k], v, source, outcome_names if (name, k) == ("effects", "outcomes") else None) for k, v in raw.items()}
        kwargs[name] = cls(**values, **specs)
    cfg = StudyConfig(**kwargs, base_dir=base_dir, source=source)
    _range_checks(cfg)
    return cfg


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a study configuration file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            "Study configuration not found",
            file=path,
            expected="a TOML file",
            found="no such file",
            hint="see studies/demo.toml for an example",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            "The study configuration is not valid TOML", file=path, expected="TOML", found=str(exc), hint="check quotes and brackets"
        ) from exc
    return config_from_dict(data, base_dir=path.resolve().parent, source=path)
