"""``popeval run``: the whole study from one configuration file, cached by content.

Steps (each keyed by the SHA-256 of its inputs, its settings and the code version; a rerun reuses
what has not changed and says so):

1. **survey**   resolve the LimeSurvey snapshot (a folder, the latest under ``snapshots_dir``, or
   a fresh ``fetch``) and parse it into one row per respondent;
2. **ingest**   validate the DWSE and VDAB extracts into DuckDB (raw INSZ refused or pseudonymised);
3. **link**     the study population, the survey participants, margins and the population profile;
4. **weight**   respondents raked to the population margins;
5. **design**   propensity score, matching and balance — without reading an outcome; its hash is
   locked, and the outcome step refuses a design that changed after the lock;
6. **outcomes** effects under every method, end-to-end replicate SEs, adjusted p-values,
   sensitivity;
7. **bundle**   tidy tables, every estimate and a manifest (byte-identical across reruns);
8. **exports**  the analysis file as SPSS ``.sav``, Stata ``.dta`` and Parquet;
9. **report**   HTML, PDF and DOCX from the bundle.

Timings and host details go to ``run.log`` beside the bundle, never into it.
"""

from __future__ import annotations

import contextlib
import copyreg
import hashlib
import json
import logging
import pickle
import platform
import subprocess
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.config import MIN_REPLICATES, StudyConfig
from survey.errors import ConfigError, PopevalError
from survey.hashing import sha256_file

if TYPE_CHECKING:
    from analysis.estimation import EstimatorSpec

__all__ = ["ADVISED_REPLICATES", "COMPLETE_MARKER", "MIN_REPLICATES", "PLANS_SOURCES", "CacheError", "DesignLockError", "RunResult", "StudyLockedError", "code_version", "resolve_snapshot", "run", "run_scope"]

log = logging.getLogger(__name__)

_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "duckdb", "pyarrow", "citric", "linearmodels", "pyreadstat", "jupytext", "nbclient", "typst", "pypandoc")
_REPO = Path(__file__).resolve().parents[1]


class DesignLockError(PopevalError, RuntimeError):
    """The design changed after it was locked."""


@dataclass(frozen=True)
class RunResult:
    """What a run produced and what it reused."""

    run_dir: Path
    bundle: Path | None
    report: Mapping[str, Path]
    reused: tuple[str, ...]
    computed: tuple[str, ...]
    headline: pd.DataFrame = field(default_factory=pd.DataFrame)
    stage: str = "all"
    #: Warnings the user must see (too few replicates, methods not estimable).
    warnings: tuple[str, ...] = ()
    #: Secondary (outcome, method) pairs that could not be estimated, with the reason.
    not_estimable: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> str:
        """The one-screen summary printed at the end of ``popeval run``."""
        lines = [f"popeval run ({self.stage}) finished", f"  run folder : {self.run_dir}"]
        if self.bundle is not None:
            lines.append(f"  bundle     : {self.bundle}")
        lines.append(f"  computed   : {', '.join(self.computed) or 'nothing'}")
        lines.append(f"  reused     : {', '.join(self.reused) or 'nothing'}")
        if not self.headline.empty:
            lines.append("  effects of a POP (ATT, main estimator, Likert points):")
            for _, r in self.headline.iterrows():
                lines.append(
                    f"    {r['outcome']:<13} {r['estimate']:+.3f}  [{r['ci_lower']:+.3f}, {r['ci_upper']:+.3f}]  p(Holm) = {r['p_holm']:.3g}"
                )
        if not self.not_estimable.empty:
            lines.append("  not estimable (secondary methods; the main results stand):")
            for ne in self.not_estimable.to_dict("records"):
                lines.append(f"    {ne['method']} on {ne['outcome']}: {ne['reason']}")
        others = [w for w in self.warnings if "not estimable" not in w]
        for w in others:
            lines.append(f"  WARNING: {w}")
        for fmt, path in sorted(self.report.items()):
            lines.append(f"  report ({fmt}) : {path}")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """Steps and whether each was computed or reused."""
        return pd.DataFrame({"step": [*self.computed, *self.reused], "status": ["computed"] * len(self.computed) + ["reused"] * len(self.reused)})


# --------------------------------------------------------------------------- hashing and caching


#: The report's sources: editing them re-renders the report but never re-estimates (not in the estimation's keys).
REPORT_SOURCES = ("reports", "analysis/report", "analysis/commands/report.py", "analysis/plans/report.py")


#: The POP part's sources: editing them recomputes the POP part (and re-renders), never the survey estimation.
PLANS_SOURCES = ("analysis/plans",)


def code_version(*, report: bool = True, plans: bool = True) -> str:
    """SHA-256 over the package sources (``survey/``, ``analysis/``) and, with ``report``, the report's.

    The estimation steps are keyed without the report's sources (:data:`REPORT_SOURCES`), so that
    changing a sentence or a table of the report re-renders it and recomputes nothing else; and
    without the POP part's (:data:`PLANS_SOURCES`, ``plans=False``), which has its own step.
    """
    h = hashlib.sha256()
    for folder in ("survey", "analysis", "reports"):
        for p in sorted((_REPO / folder).rglob("*")):
            rel = p.relative_to(_REPO).as_posix()
            if not report and any(rel == s or rel.startswith(s + "/") for s in REPORT_SOURCES):
                continue
            if not plans and any(rel == s or rel.startswith(s + "/") for s in PLANS_SOURCES):
                continue
            if p.is_file() and p.suffix in (".py", ".qmd", ".yml", ".typ", ".css", ".lua", ".docx") and "_output" not in p.parts:
                h.update(str(p.relative_to(_REPO)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _mappingproxy(d: dict[Any, Any]) -> Any:
    import types

    return types.MappingProxyType(d)


def _reduce_mappingproxy(m: Any) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _mappingproxy, (dict(m),)


#: The loggers whose records a run copies to its ``run.log``.
RUN_LOGGERS = ("analysis", "survey")


@contextlib.contextmanager
def run_scope(log_file: Path) -> Iterator[None]:
    """The process state a run needs, restored when it ends.

    Records of :data:`RUN_LOGGERS` at INFO and above are copied to ``log_file`` (those loggers are
    lowered to INFO if they were stricter; the root logger and other libraries' loggers are left
    alone), and BLAS runs on one thread (small dense algebra: fastest, and it does not
    oversubscribe the cores).  Handlers, levels and thread limits are put back on exit.
    """
    from threadpoolctl import threadpool_limits

    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()


class CacheError(PopevalError, OSError):
    """The cache folder cannot be written."""


class _Cache:
    """Pickled step outputs under ``<derived>/cache/<step>-<key>.pkl`` (local, never published).

    Each entry holds its step name and full key beside the value; :meth:`get` returns the value only
    when both match, so a file renamed, copied from another configuration or left by an older version
    is never trusted.  An entry that cannot be read (truncated, corrupt, another pickle) is logged,
    deleted and recomputed.  Entries are written atomically.
    """

    _FORMAT = "popeval-cache-1"

    def __init__(self, root: Path) -> None:
        self.root = root / "cache"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, step: str, key: str) -> Path:
        return self.root / f"{step}-{key[:24]}.pkl"

    def get(self, step: str, key: str) -> Any | None:
        p = self.path(step, key)
        if not p.exists():
            return None
        try:
            with p.open("rb") as fh:
                entry = pickle.load(fh)
        except Exception as exc:  # any unreadable entry is discarded, whatever the reason
            log.warning("cache entry %s is unreadable (%s: %s); discarded and recomputed", p.name, type(exc).__name__, exc)
            self._discard(p)
            return None
        ok = isinstance(entry, dict) and entry.get("format") == self._FORMAT and entry.get("step") == step and entry.get("key") == key
        if not ok:
            log.warning("cache entry %s does not belong to this step and key; discarded and recomputed", p.name)
            self._discard(p)
            return None
        return entry["value"]

    def put(self, step: str, key: str, value: Any) -> None:
        from survey.files import atomic_write

        with atomic_write(self.path(step, key), "wb") as fh:
            pickler = pickle.Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL)
            # read-only mappings pickle as themselves; this pickler only, not process-wide
            pickler.dispatch_table = {**copyreg.dispatch_table, types.MappingProxyType: _reduce_mappingproxy}
            pickler.dump({"format": self._FORMAT, "step": step, "key": key, "value": value})

    @staticmethod
    def _discard(p: Path) -> None:
        try:
            p.unlink()
        except OSError as exc:
            log.warning("could not delete the unreadable cache entry %s: %s", p, exc)


# --------------------------------------------------------------------------- steps


def resolve_snapshot(cfg: StudyConfig, progress: bool = True) -> Path:
    from survey.snapshot import latest_snapshot, verify_snapshot

    snap = cfg.survey.snapshot
    if snap == "fetch":
        from survey.fetch import fetch

        res = fetch(survey_id=cfg.survey.survey_id, out=cfg.path(cfg.survey.snapshots_dir), progress=progress)
        return Path(res.snapshot)
    if snap == "latest":
        base = cfg.path(cfg.survey.snapshots_dir)
        found = latest_snapshot(base, cfg.survey.survey_id)
        if found is None:
            raise ConfigError(
                "No survey snapshot found",
                file=base / str(cfg.survey.survey_id),
                param="survey.snapshot",
                expected="a snapshot folder with manifest.json",
                found="none",
                hint="run `popeval fetch` first, or set survey.snapshot to a snapshot folder",
            )
        verify_snapshot(found)
        return found
    p = cfg.path(snap)
    if p.is_dir() and (p / "manifest.json").exists():
        verify_snapshot(p)
    if not (p / "manifest.json").exists() and not p.is_file():
        raise ConfigError(
            "The survey snapshot does not exist",
            file=p,
            param="survey.snapshot",
            expected="a snapshot folder with manifest.json, 'latest' or 'fetch'",
            found="no such snapshot",
            hint="check the path (relative to the configuration file)",
        )
    return p


def _pseudo_key(cfg: StudyConfig) -> bytes | None:
    if not cfg.admin.pseudonymise:
        return None
    from survey.insz import pseudo_key_from_env

    return pseudo_key_from_env()


def _mapping_record(cfg: StudyConfig) -> dict[str, Any]:
    """The input descriptions and questionnaire mapping, with their hash (manifest and cache keys)."""
    from analysis.population.mapping import mapping_hash

    d = cfg.to_dict()
    survey = {"columns": d["survey"]["columns"], "answers": d["survey"]["answers"], "outcomes": d["survey"]["outcomes"],
              "key_attribute": cfg.survey.key_attribute, "outcome_order": list(cfg.survey.outcome_names())}
    admin = {k: {kk: vv for kk, vv in d["admin"][f"{k}_input"].items() if kk != "file"} for k in ("dwse", "vdab")}
    h = hashlib.sha256(json.dumps([mapping_hash(cfg.admin.dwse_input, cfg.admin.vdab_input), survey], sort_keys=True).encode()).hexdigest()
    return {"admin": admin, "survey": survey, "hash": h}


def _preflight_survey(cfg: StudyConfig, snap: Path) -> None:
    """A mapped survey column that is missing stops the run here, before anything is computed."""
    m = cfg.survey.mapping()
    if m.empty:
        return
    from survey.parse import find_responses_file, read_responses

    resp = snap if snap.is_file() else find_responses_file(snap)
    fm = None
    if snap.is_dir() and (snap / "fieldmap.json").is_file():
        fm = json.loads((snap / "fieldmap.json").read_text(encoding="utf-8"))
    m.check_header([str(c) for c in read_responses(resp, fm if isinstance(fm, dict) and "status" not in fm else None).columns], resp)


def _provenance(*inputs: Path) -> str:
    """'synthetic' when the generator marked the data (``provenance.json`` beside or above the inputs), else ''."""
    for p in inputs:
        for folder in (p.parent, p.parent.parent):
            f = folder / "provenance.json"
            if f.is_file():
                try:
                    return str(json.loads(f.read_text(encoding="utf-8")).get("provenance", ""))
                except (json.JSONDecodeError, AttributeError):
                    return ""
    return ""


def _snapshot_hash(snap: Path) -> dict[str, str]:
    files = [snap] if snap.is_file() else sorted(p for p in snap.iterdir() if p.is_file())
    return {p.name: sha256_file(p) for p in files}


def _response_detail(resp: Any, population: pd.DataFrame, frame: pd.DataFrame, outcomes: tuple[str, ...]) -> dict[str, Any]:
    """From the export's rows to the analysed respondents, and the missing answers per outcome."""
    f = resp.frame
    c = dict(resp.counts)
    complete = f[f["complete"]]
    no_key = complete["person_key"].isna()
    out: dict[str, Any] = {k: int(c[k]) for k in ("raw_rows", "duplicates_dropped", "respondents", "incomplete", "complete") if k in c}
    out["no_participant"] = int(no_key.sum())
    out["not_in_population"] = int((~no_key & ~complete["person_key"].isin(population["person_key"])).sum())
    out["outcomes"] = {o: {"missing": int(frame[o].isna().sum()), "analysed": int(frame[o].notna().sum())} for o in outcomes if o in frame.columns}
    return out


def _analysis_frame(resp: Any, population: pd.DataFrame, outcomes: tuple[str, ...], *, with_outcomes: bool) -> tuple[pd.DataFrame, dict[str, int]]:
    """Respondents linked to the population, with design weights; plus the response flow."""
    f = resp.frame
    counts = dict(resp.counts)
    pop = population.set_index("person_key")
    started = len(f)
    complete = f[f["complete"]]
    linked = complete[complete["person_key"].isin(pop.index)]
    covars = ["pop", "educ", "age_band", "sex", "sector", "company_size", "province", "statute", "had_guidance"]
    keep_cols = ["response_id", "person_key", "train_domain"] + ([*outcomes] if with_outcomes else [])
    df = linked.loc[:, keep_cols].join(pop.loc[:, covars], on="person_key")
    df["pop"] = df["pop"].astype(int)
    df["guidance"] = df.pop("had_guidance").astype(int)
    for c in ("educ", "age_band", "sex", "sector", "company_size", "province", "statute"):
        df[c] = df[c].astype(str)
    df["train_domain"] = df["train_domain"].astype(object).where(df["train_domain"].notna(), "onbekend").astype(str)
    if with_outcomes:
        for o in outcomes:
            df[o] = df[o].astype(float)
    n_pop = population.groupby("pop").size()
    n_inv = population[population["invited"]].groupby("pop").size()
    wd = n_pop / n_inv
    df["w_design"] = df["pop"].map({int(k): float(v) for k, v in zip(wd.index.to_numpy(), wd.to_numpy(), strict=True)})
    df = df.sort_values("response_id").reset_index(drop=True)
    flow = {
        "invited": int(population["invited"].sum()),
        "started": int(started),
        "completed": len(complete),
        "linked": len(linked),
        "analysed": len(df),
    }
    counts.update({f"flow_{k}": v for k, v in flow.items()})
    return df, flow


def _design_hash(design: Any) -> str:
    m = design.match
    parts = [
        np.round(design.weights.to_numpy(dtype=float), 10).tobytes(),
        np.round(m.weights.to_numpy(dtype=float), 10).tobytes(),
        np.round(m.combined_weights.to_numpy(dtype=float), 10).tobytes(),
        np.round(np.asarray(m.distance, dtype=float), 10).tobytes() if m.distance is not None else b"",
    ]
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def _dummy_name(var: str, covariates: tuple[str, ...]) -> str:
    """``educhoog`` -> ``educ=hoog`` (the balance tables name dummies as variable + level)."""
    for c in sorted(covariates, key=len, reverse=True):
        if var.startswith(c) and var != c:
            return f"{c}={var[len(c):]}"
    return var


def _balance_table(bal: Any, covariates: tuple[str, ...]) -> pd.DataFrame:
    """Before/after balance, and the matched groups against the population of POP users.

    Stage ``population``: standardised difference of the weighted matched controls from the POP users
    of the admin population (the ATT's target); ``population_treated``: the same for the matched
    POP respondents.
    """
    rows = []
    for stage, tab in (("before", bal.before), ("after", bal.after)):
        for var, r in tab.iterrows():
            if str(var) == "distance":
                continue
            rows.append(
                {
                    "variable": _dummy_name(str(var), covariates),
                    "stage": stage,
                    "smd": r.get("Std. Mean Diff."),
                    "variance_ratio": r.get("Var. Ratio"),
                    "ecdf_mean": r.get("eCDF Mean"),
                    "ecdf_max": r.get("eCDF Max"),
                }
            )
    if bal.population is not None:
        for var, r in bal.population.iterrows():
            for stage, col in (("population", "SMD Control vs Pop."), ("population_treated", "SMD Treated vs Pop.")):
                rows.append({"variable": _dummy_name(str(var), covariates), "stage": stage, "smd": r.get(col), "variance_ratio": np.nan, "ecdf_mean": np.nan, "ecdf_max": np.nan})
    return pd.DataFrame(rows)


def _population_means(population: pd.DataFrame, covariates: tuple[str, ...]) -> dict[str, float]:
    """Population shares of each covariate level, named as the balance table names dummies."""
    out: dict[str, float] = {}
    for c in covariates:
        shares = population[c].astype(str).value_counts(normalize=True)
        for level, share in shares.items():
            out[f"{c}{level}"] = float(share)
    return out


def _weighting_tables(design: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Respondents vs population per margin cell (after any sparse-cell collapse), and weight statistics."""
    w = design.weights.to_numpy(dtype=float)
    diag = design.diagnostics
    checks = diag.margins_frame() if diag is not None else pd.DataFrame()
    rows = []
    for margin, grp in checks.groupby("margin", sort=False):
        tot_pop = float(grp["population"].sum())
        n = float(grp["respondents"].sum())
        tot_after = float(grp["weighted_after"].sum())
        for r in grp.to_dict("records"):
            rows.append(
                {
                    "variable": str(margin),
                    "category": str(r["category"]).replace("True", "1").replace("False", "0"),
                    "population": float(r["population"]),
                    "n_respondents": int(r["respondents"]),
                    "pct_population": 100 * r["population"] / tot_pop,
                    "pct_unweighted": 100 * r["respondents"] / n,
                    "pct_weighted": 100 * r["weighted_after"] / tot_after,
                }
            )
    wpos = w[w > 0]
    stats = {
        "n": len(wpos),
        "min": float(wpos.min()),
        "median": float(np.median(wpos)),
        "max": float(wpos.max()),
        "ratio_max_min": float(wpos.max() / wpos.min()),
        "kish_deff": float(len(wpos) * (wpos**2).sum() / wpos.sum() ** 2),
        "n_effective": float(wpos.sum() ** 2 / (wpos**2).sum()),
        "converged": float(bool(getattr(diag, "converged", True))),
        "iterations": float(getattr(diag, "iterations", 0) or 0),
        "collapsed_cells": float(len(getattr(diag, "collapsed", ()) or ())),
    }
    return pd.DataFrame(rows), pd.DataFrame({"statistic": list(stats), "value": list(stats.values())})


def _linkage_table(lr: Any) -> pd.DataFrame:
    """The linkage report's tidy counts as the bundle's ``linkage`` table."""
    d = lr.to_frame()
    return pd.DataFrame({"source": d["section"], "status": d["item"], "n": d["count"]})


def _profile_tables(pr: Any) -> dict[str, pd.DataFrame]:
    ps = pr.pop_share
    pop_share = pd.DataFrame(
        {"incentive": ps["incentive"], "unit": ps["unit"], "n_approved": ps["total"], "n_pop": ps["pop_based"], "pct_pop": ps["pct_pop"]}
    )
    comp = pr.composition
    prof = pd.concat(
        [
            pd.DataFrame({"variable": comp["variable"], "category": comp["category"], "group": "pop", "n": comp["pop_users"], "pct": comp["pct_pop_users"]}),
            pd.DataFrame({"variable": comp["variable"], "category": comp["category"], "group": "all", "n": comp["all_users"], "pct": comp["pct_all_users"]}),
        ],
        ignore_index=True,
    )
    dom = pr.domains
    domains = pd.DataFrame({"group": "pop", "in_databank": (dom["databank"] == "inside").astype(int), "domain": dom["training_domain"], "n": dom["count"], "pct": dom["pct"], "rank": dom["rank"]})
    od = pr.outside_databank
    outside = pd.DataFrame({"incentive": od["incentive"], "n_pop": od["pop_based"], "n_outside": od["outside"], "pct_outside": od["pct_outside"]})
    return {"pop_share": pop_share, "profile": prof, "training_domains": domains, "outside_databank": outside}


def _p_adjust(effects: pd.DataFrame) -> pd.DataFrame:
    # scipy.stats' norm.sf and norm.ppf, without loading scipy.stats
    from scipy.special import ndtr, ndtri

    from analysis.effects import adjust_pvalues

    eff = effects.copy()
    z = eff["estimate"] / eff["bse"]
    eff["p_value"] = 2 * ndtr(-np.abs(z))
    q = ndtri(0.975)
    eff["ci_lower"] = eff["estimate"] - q * eff["bse"]
    eff["ci_upper"] = eff["estimate"] + q * eff["bse"]
    eff["p_holm"] = np.nan
    eff["p_bh"] = np.nan
    for _, idx in eff.groupby(["method", "scale"]).groups.items():
        holm, bh = adjust_pvalues(eff.loc[idx, "p_value"].to_numpy())
        eff.loc[idx, "p_holm"] = holm
        eff.loc[idx, "p_bh"] = bh
    return eff


def _packages() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in _PACKAGES:
        try:
            out[p] = version(p if p != "pypandoc" else "pypandoc-binary")
        except PackageNotFoundError:
            out[p] = "not installed"
    out["python"] = platform.python_version()
    return out


def _commit() -> str:
    try:
        r = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10).stdout.strip()
        return r.stdout.strip() + ("+modified" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


#: Variable labels (Dutch) of every exported variable that the data model does not label.
_EXPORT_LABELS = {
    "response_id": "Respons-id (LimeSurvey)",
    "train_domain": "Domein van de opleiding (survey)",
    "pop": "POP-gebaseerde opleidingscheque",
    "guidance": "Loopbaanbegeleiding gevolgd",
    "age_band": "Leeftijdsgroep",
    "w_design": "Designgewicht (populatie / uitgenodigd per POP-stratum)",
    "w_survey": "Surveygewicht (gekalibreerd)",
    "propensity": "Propensityscore",
    "w_matching": "Matchinggewicht",
    "w_analysis": "Analysegewicht (survey x matching)",
    "match_set": "Matchset-id (POP-respondent en zijn gematchte controles; zie match_sets)",
    "n_match_sets": "Aantal matchsets waarin deze controle voorkomt",
    "role": "Rol in de matchset",
    "slot": "Volgnummer van de controle in de matchset (0 = POP-respondent)",
}
_NOMINAL = ("response_id", "train_domain", "pop", "guidance", "sex", "sector", "company_size", "province", "statute", "match_set", "role")
_ORDINAL = ("educ", "age_band")


def _export_frame(frame: pd.DataFrame, design: Any, flags: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The analysis file (one row per respondent) and the long-form match sets.

    Matching with replacement lets one control serve several POP respondents, so there are no
    disjoint pairs or subclasses.  Instead every matched POP respondent gets a ``match_set`` id (1, 2,
    ... in the order of ``response_id``); the companion file has one row per member of each match set
    (``role`` 'treated' or 'control', ``slot`` 0 for the POP respondent, 1..ratio for its controls), so
    a control appears once for every set it belongs to.  ``n_match_sets`` in the analysis file counts
    them for each control.  The linkage pseudonym ``person_key`` is never exported.
    """
    m = design.match
    df = frame.drop(columns=["person_key"], errors="ignore").copy()
    df["w_survey"] = design.weights.to_numpy(dtype=float)
    if design.inside is not None:
        df["inside_support"] = design.inside.to_numpy().astype(int)
    df["propensity"] = m.distance.reindex(df.index).to_numpy(dtype=float) if m.distance is not None else np.nan
    df["w_matching"] = m.weights.reindex(df.index).fillna(0).to_numpy(dtype=float)
    df["w_analysis"] = m.combined_weights.reindex(df.index).fillna(0).to_numpy(dtype=float)
    mm = m.match_matrix
    rid = df["response_id"]
    has = mm.notna().any(axis=1)
    treated = [i for i in mm.index[has.to_numpy()]]
    treated.sort(key=lambda i: rid.loc[i])
    rows = []
    set_of: dict[Any, int] = {}
    for k, t_idx in enumerate(treated, start=1):
        set_of[t_idx] = k
        rows.append({"match_set": k, "role": "treated", "slot": 0, "response_id": rid.loc[t_idx]})
        for slot, c in enumerate(mm.loc[t_idx].tolist(), start=1):
            if c is not None and not pd.isna(c):
                rows.append({"match_set": k, "role": "control", "slot": slot, "response_id": rid.loc[c]})
    sets = pd.DataFrame(rows, columns=["match_set", "role", "slot", "response_id"])
    df["match_set"] = pd.Series(set_of, dtype=float).reindex(df.index).to_numpy()
    counts = sets.loc[sets["role"] == "control", "response_id"].value_counts()
    df["n_match_sets"] = rid.map(counts).fillna(0).astype(float).where(df["pop"] == 0, np.nan)
    if flags is not None and not flags.empty:
        df = df.join(flags.set_index("response_id"), on="response_id")
    return df, sets


def _outcome_table(cfg: StudyConfig, analysed: tuple[str, ...]) -> list[dict[str, str]]:
    """The analysed outcomes in their order, with survey column, labels and direction (the manifest's ``outcomes``)."""
    rows = {r["name"]: r for r in cfg.survey.mapping().outcome_table()}
    return [rows[o] for o in analysed if o in rows]


@dataclass(frozen=True)
class _LabelledFile:
    """A file for SPSS and Stata: its columns as each writes them, with their labels and levels."""

    sav: pd.DataFrame
    dta: pd.DataFrame
    column_labels: dict[str, str | None]
    value_labels: dict[str, dict[Any, str]]
    dta_value_labels: dict[str, dict[Any, str]]
    measure: dict[str, str]
    #: SPSS user-missing codes per outcome ('weet niet'); Stata has ``.a`` for these.
    missing_ranges: dict[str, list[Any]] | None = None

    @property
    def missing_user_values(self) -> dict[str, list[str]] | None:
        """Stata's extended missing value ``.a`` for every outcome with a user-missing code."""
        return None if self.missing_ranges is None else {o: ["a"] for o in self.missing_ranges}


def _coded(values: pd.Series, vocab: list[tuple[str, str]]) -> tuple[pd.Series, dict[Any, str]]:
    """A categorical column as codes 1, 2, ... in the order of ``vocab``, and its value labels.

    A value outside the vocabulary keeps a code of its own, labelled with itself.
    """
    codes = {code: i + 1 for i, (code, _) in enumerate(vocab)}
    for u in sorted(set(values.dropna().astype(str)) - set(codes)):
        codes[u] = len(codes) + 1
        vocab = [*vocab, (u, u)]
    return values.astype(str).map(codes).astype(float).where(values.notna()), {codes[code]: lab for code, lab in vocab}


def _coded_columns(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[Any, str]], dict[str, str]]:
    """Every column of the analysis file as SPSS stores it, with value and variable labels.

    Columns with a vocabulary (the data model's, the age bands, the training domains of the survey
    or the data model) become labelled codes; ``role`` (of the match sets) is left out.
    """
    from survey.datamodel import AGE_BANDS, ALL_TABLES, TRAINING_DOMAINS
    from survey.questionnaire import QUESTIONNAIRE

    dwse = ALL_TABLES["dwse_applications"]
    survey_domain = next((q for q in QUESTIONNAIRE.questions if q.name == "train_domain"), None)
    value_labels: dict[str, dict[Any, str]] = {}
    labels: dict[str, str] = dict(_EXPORT_LABELS)
    sav = pd.DataFrame(index=df.index)
    for c in df.columns:
        try:
            col = dwse.column(c)
        except KeyError:
            col = None
        vocab: list[tuple[str, str]] | None = None
        if col is not None and col.vocabulary:
            vocab = [(v.code, v.nl) for v in col.vocabulary]
            labels.setdefault(c, col.nl)
        elif c == "age_band":
            vocab = [(v.code, v.nl) for v in AGE_BANDS]
        elif c == "train_domain":
            vocab = [(v.code, v.nl) for v in TRAINING_DOMAINS]
            if survey_domain is not None and set(df[c].astype(str)) & {a.code for a in survey_domain.answers}:
                vocab = [(a.code, a.nl) for a in survey_domain.answers]
            vocab = [*vocab, ("onbekend", "Onbekend / niet beantwoord")]
        elif c == "role":
            continue
        if vocab is None:
            sav[c] = df[c]
        else:
            sav[c], value_labels[c] = _coded(df[c], vocab)
    return sav, value_labels, labels


def _labelled_analysis_file(df: pd.DataFrame, outcomes: tuple[Any, ...]) -> _LabelledFile:
    """The analysis file for SPSS and Stata: coded columns, 'weet niet' per outcome, labels and levels."""
    from survey.questionnaire import DONT_KNOW, LIKERT

    sav, value_labels, labels = _coded_columns(df)
    dk_code = int(DONT_KNOW)
    missing_ranges: dict[str, list[Any]] = {}
    dta = sav.copy()
    for o in (o for o in outcomes if o.name in df.columns):
        flag = f"{o.name}_dont_know"
        dk = df[flag].fillna(False).astype(bool) if flag in df.columns else pd.Series(False, index=df.index)
        sav[flag] = dk.astype(float)
        dta[flag] = dk.astype(float)
        sav[o.name] = df[o.name].astype(float).where(~dk, float(dk_code))
        dta[o.name] = df[o.name].astype(object).where(~dk, "a")
        dta[o.name] = dta[o.name].map(lambda v: v if v == "a" or pd.isna(v) else float(v))
        value_labels[o.name] = {int(a.code): a.nl for a in LIKERT}
        missing_ranges[o.name] = [dk_code]
        labels[o.name] = o.nl
        labels[flag] = f"{o.nl}: 'weet niet' geantwoord"
        value_labels[flag] = {0: "Nee", 1: "Ja"}
    value_labels["pop"] = {0: "Geen POP", 1: "POP"}
    value_labels["guidance"] = {0: "Nee", 1: "Ja"}
    if "inside_support" in sav.columns:
        labels["inside_support"] = "Binnen de support van de schatting (vergelijkbare controles)"
        value_labels["inside_support"] = {0: "Nee", 1: "Ja"}
    measure = {c: ("nominal" if c in _NOMINAL or c.endswith("_dont_know") else "ordinal" if c in _ORDINAL or c in missing_ranges else "scale") for c in sav.columns}
    measure["response_id"] = "nominal"
    dta_labels = {o: {**{k: v for k, v in value_labels[o].items() if k != dk_code}, "a": "Weet niet"} for o in missing_ranges}
    return _LabelledFile(
        sav=sav,
        dta=dta,
        column_labels={c: labels.get(c, c) for c in sav.columns},
        value_labels=value_labels,
        dta_value_labels={**value_labels, **dta_labels},
        measure=measure,
        missing_ranges=missing_ranges,
    )


def _labelled_match_sets(sets: pd.DataFrame) -> _LabelledFile:
    """The match sets for SPSS and Stata (``role`` coded 1 = POP respondent, 2 = matched control)."""
    set_sav = sets.assign(role=sets["role"].map({"treated": 1, "control": 2}).astype(float))
    values: dict[str, dict[Any, str]] = {"role": {1: "POP-respondent", 2: "Gematchte controle"}}
    return _LabelledFile(
        sav=set_sav,
        dta=set_sav,
        column_labels={c: _EXPORT_LABELS[c] for c in set_sav.columns},
        value_labels=values,
        dta_value_labels=values,
        measure={"match_set": "nominal", "role": "nominal", "slot": "ordinal", "response_id": "nominal"},
    )


def _write_exports(frame: pd.DataFrame, design: Any, out: Path, flags: pd.DataFrame | None = None, outcomes: tuple[Any, ...] | None = None) -> dict[str, Path]:
    """The analysis file for SPSS and Stata users and as Parquet, and its match sets.

    SPSS (``.sav``): value labels, variable labels and measure levels for every variable; 'weet niet'
    on an outcome keeps its code 99, declared user-missing and labelled.  Stata (``.dta``): the same
    labels; 'weet niet' is the extended missing value ``.a``, labelled.  Both files also hold a 0/1
    ``<outcome>_dont_know`` flag.  The folder is written atomically.
    """
    import pyreadstat

    from survey.files import atomic_dir
    from survey.questionnaire import OUTCOMES

    df, sets = _export_frame(frame, design, flags)
    analysis = _labelled_analysis_file(df, OUTCOMES if outcomes is None else outcomes)
    match_sets = _labelled_match_sets(sets)
    with atomic_dir(out) as tmp:
        df.drop(columns=["role"], errors="ignore").to_parquet(tmp / "analysis_file.parquet", index=False)
        sets.to_parquet(tmp / "match_sets.parquet", index=False)
        for name, f in (("analysis_file", analysis), ("match_sets", match_sets)):
            pyreadstat.write_sav(f.sav, tmp / f"{name}.sav", column_labels=f.column_labels, variable_value_labels=f.value_labels, missing_ranges=f.missing_ranges, variable_measure=f.measure)
            pyreadstat.write_dta(f.dta, tmp / f"{name}.dta", column_labels=f.column_labels, variable_value_labels=f.dta_value_labels, missing_user_values=f.missing_user_values)
    names = ("analysis_file.parquet", "analysis_file.sav", "analysis_file.dta", "match_sets.parquet", "match_sets.sav", "match_sets.dta")
    return {n: out / n for n in names}


# --------------------------------------------------------------------------- the run

#: Below this many replicates the standard errors are imprecise (relative error above ~25 %): a
#: warning in the summary, the run log and the bundle.
ADVISED_REPLICATES = 30
#: The file a run folder gets when everything in it is complete; written last.
COMPLETE_MARKER = "COMPLETE"
#: The main estimator; every other method is secondary and may be not estimable.
MAIN_METHOD = "matching"

class StudyLockedError(PopevalError, RuntimeError):
    """Another ``popeval run`` of the same study is running."""


class _StudyLock:
    """An exclusive lock per study (``<derived>/locks/<study>.run.lock``, ``flock``).

    The operating system releases it when the process ends, however it ends, so a killed run never
    leaves a stale lock.
    """

    def __init__(self, derived: Path, study: str, *, wait: bool) -> None:
        self.path = derived / "locks" / f"{study}.run.lock"
        self.study = study
        self.wait = wait
        self._fh: Any = None

    def __enter__(self) -> _StudyLock:
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            if not self.wait:
                fh.close()
                raise StudyLockedError(
                    f"Another popeval run of study {self.study!r} is running",
                    file=self.path,
                    expected="one run of a study at a time",
                    found=f"a run holds the study lock ({holder})",
                    hint="wait until it has finished, or pass --wait to queue behind it",
                ) from None
            log.info("waiting for the study lock held by %s", holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def _writable(derived: Path, cfg: StudyConfig) -> None:
    """A clear error when the derived folder cannot be written (read-only disk, permissions)."""
    import tempfile

    try:
        derived.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=derived):
            pass
    except OSError as exc:
        raise CacheError(
            "The folder for derived data cannot be written",
            file=derived,
            param="study.derived_dir",
            expected="a writable folder (popeval writes its cache, run folders and locks there, even when every step is cached)",
            found=exc.strerror or type(exc).__name__,
            hint="point study.derived_dir at a writable folder, or fix its permissions",
        ) from exc


#: Kinds of failure of a secondary method, as codes in the bundle's ``not_estimable`` table (the
#: report words each code in its own language; ``reason`` keeps the software's message): the first
#: whose test matches the exception.
NOT_ESTIMABLE_CODES: tuple[tuple[str, Callable[[BaseException, str], bool]], ...] = (
    ("too_few_categories", lambda exc, msg: "categor" in msg),
    ("separation", lambda exc, msg: "separation" in msg or "PerfectSeparation" in type(exc).__name__),
    ("singular", lambda exc, msg: isinstance(exc, np.linalg.LinAlgError) or "singular" in msg or "rank" in msg),
    ("no_convergence", lambda exc, msg: "converge" in msg),
    ("too_few_observations", lambda exc, msg: any(k in msg for k in ("too few", "at least", "empty", "no observations", "zero-size"))),
)


def not_estimable_code(exc: BaseException) -> str:
    """The kind of failure of ``exc`` (a code of :data:`NOT_ESTIMABLE_CODES`, else ``'other'``)."""
    msg = (exc.title if isinstance(exc, PopevalError) else str(exc)).lower()
    return next((code for code, test in NOT_ESTIMABLE_CODES if test(exc, msg)), "other")


def not_estimable_record(outcome: str, method: str, exc: BaseException) -> dict[str, str]:
    """The ``not_estimable`` row of a secondary method that raised ``exc``: its code and the message."""
    if isinstance(exc, PopevalError):
        reason = exc.title + (f" ({exc.detail})" if exc.detail else "")
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return {"outcome": outcome, "method": method, "code": not_estimable_code(exc), "reason": " ".join(reason.split())[:300]}


def _not_estimable_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["outcome", "method", "code", "reason"])


def _estimate_methods(frame: pd.DataFrame, design: Any, spec: Any) -> tuple[Any, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Every method on every outcome; a secondary method that fails is recorded, not fatal.

    The main estimator (matching) raises as before.  Each other (outcome, method) that raises is
    listed in the returned ``not_estimable`` frame with the reason; its row is left out of the effects.
    The last element counts the expected warnings of the fits (``"<fit>: <Warning>"`` -> count).
    """
    import dataclasses

    from analysis.estimation import METHODS, outcome_stage

    methods = [m for m in METHODS if m in spec.methods]
    tables: list[pd.DataFrame] = []
    shifts: list[pd.DataFrame] = []
    failed: list[dict[str, str]] = []
    direct: list[pd.DataFrame] = []
    fits: Counter[str] = Counter()
    for o in spec.outcomes:
        one = dataclasses.replace(spec, outcomes=(o,))
        for meth in methods:
            if meth == MAIN_METHOD:
                est = outcome_stage(frame, design, one, methods=(meth,))
            else:
                try:
                    est = outcome_stage(frame, design, one, methods=(meth,))
                except Exception as exc:  # a secondary method must not take the main results down
                    record = not_estimable_record(o, meth, exc)
                    log.warning("%s on %s not estimable: %s", meth, o, record["reason"])
                    failed.append(record)
                    continue
            if len(est.table):
                tables.append(est.table)
            fits.update(est.details.get("fit_warnings", {}))
            if len(est.category_shifts):
                shifts.append(est.category_shifts)
            cde = est.details.get("controlled_direct_effect")
            if cde is not None and len(cde):
                direct.append(cde)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    cs = pd.concat(shifts, ignore_index=True) if shifts else pd.DataFrame(columns=["outcome", "category", "shift", "bse", "ci_lower", "ci_upper"])
    # the fixed-effects variant is a controlled direct effect, kept out of the effects table
    direct_table = pd.concat(direct, ignore_index=True) if direct else pd.DataFrame(columns=["outcome", "method", "estimand", "scale", "estimate", "bse", "n_treated", "n_control"])
    return table, cs, _not_estimable_frame(failed), direct_table, dict(sorted(fits.items()))


def run(
    cfg: StudyConfig,
    *,
    stage: str = "all",
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    wait: bool = False,
) -> RunResult:
    """Run the study (``stage``: 'design' stops after the locked design; 'all' goes to the report).

    One run of a study at a time: a second run of the same study raises
    :class:`StudyLockedError`, or waits for the first with ``wait=True``.  The run folder gets the
    file :data:`COMPLETE_MARKER` last; ``run.log`` records the run, its failures and interruptions.
    """
    if stage not in ("design", "all"):
        raise ConfigError("Unknown stage", param="stage", expected="'design' or 'all'", found=repr(stage), hint="popeval run --stage design stops after the locked design; --no-report skips the report")
    derived = cfg.path(cfg.study.derived_dir).resolve()
    _writable(derived, cfg)
    with _StudyLock(derived, cfg.study.name, wait=wait):
        return _run_locked(cfg, derived, stage=stage, progress=progress, echo=echo)


def _link_step(cfg: StudyConfig, derived: Path, admin_key: str, dwse: Path, vdab: Path, participants: Path | None, snap: Path, progress: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """The ingest + link step: the admin extracts into a fresh DuckDB, linkage, margins and profile."""
    from analysis.population import ingest, link, load_population, margins, profile
    from survey.files import atomic_write

    db = derived / f"popeval-{admin_key[:16]}.duckdb"
    key = _pseudo_key(cfg)
    lines: Callable[[str], None] | bool = say if progress else False
    # built under a temporary name and renamed when complete: never a half-written database
    with atomic_write(db, None) as tmp_db:
        tmp_db.unlink()
        try:
            ing = ingest(dwse, vdab, db=tmp_db, pseudonymise=cfg.admin.pseudonymise, key=key, dwse_spec=cfg.admin.dwse_input,
                         vdab_spec=cfg.admin.vdab_input, progress=lines)
            lr = link(tmp_db, participants=participants or (snap if snap.is_dir() else None), school_years=cfg.study.school_years or None,
                      key_attribute=cfg.survey.key_attribute, pseudo_key=key, progress=lines)
            population = load_population(tmp_db)
            mg = margins(tmp_db, [k[0] if len(k) == 1 else tuple(k) for k in cfg.weighting.margins], progress=lines)
            pr = profile(tmp_db, threshold=cfg.study.disclosure_threshold, progress=lines)
        except PopevalError as exc:
            if exc.hint and "popeval ingest" in exc.hint:
                exc.with_hint("popeval run builds this database itself from admin.dwse and admin.vdab; rerun `popeval run` (report the problem if it persists)")
            raise
        Path(f"{tmp_db}.wal").unlink(missing_ok=True)
    return {"ingest": ing, "linkage": lr, "population": population, "margins": mg, "profile": pr, "db": db.name}


def _design_step(resp: Any, population: pd.DataFrame, mg: Any, spec: Any) -> dict[str, Any]:
    """The design step: analysis frame, weights, overlap, matching and balance (reads no outcome)."""
    from analysis.estimation import design_stage, weight_stage

    frame, flow = _analysis_frame(resp, population, spec.outcomes, with_outcomes=False)
    wdesign = weight_stage(frame, mg.totals, spec)
    d = design_stage(frame, wdesign.weights, spec)
    from analysis.matching import balance

    # the ATT's target population: the POP users of the admin population
    # the target population: the POP users of the admin population inside the estimand's
    # support (the excluded covariate cells removed), for the levels the matched data have
    analysed = frame.loc[d.analysis_weights.to_numpy() > 0]
    target = population[population["pop"]]
    for g in d.overlap.estimand()["excluded_groups"]:
        target = target[target[g["variable"]].astype(str) != g["category"]]
    present = {f"{c}{v}" for c in spec.covariates for v in analysed[c].astype(str).unique()}
    pmeans = {k: v for k, v in _population_means(target, spec.covariates).items() if k in present}
    bal = balance(d.match, analysed, " + ".join(spec.covariates), population_means=pmeans)
    wm, wdiag = _weighting_tables(wdesign)
    return {"frame": frame, "flow": flow, "design": d, "balance": bal, "weighting_margins": wm, "weight_diagnostics": wdiag, "hash": _design_hash(d)}



def _outcomes_step(resp: Any, population: pd.DataFrame, des: Mapping[str, Any], mg: Any, spec: Any, cfg: StudyConfig, progress: bool) -> dict[str, Any]:
    """The outcomes step: every method, end-to-end replicates, p-values, sensitivity and reliability."""
    from analysis.estimation import end_to_end_variance

    frame, _ = _analysis_frame(resp, population, spec.outcomes, with_outcomes=True)
    d = des["design"]
    table, shifts, failed, direct, fit_warnings = _estimate_methods(frame, d, spec)
    eff = table.copy()
    eff["model_bse"] = eff["bse"]
    rep = None
    if cfg.effects.replicates > 0:
        n_h = population.groupby("pop").size()
        rep = end_to_end_variance(
            frame,
            {k: dict(v) for k, v in mg.totals.items()},  # plain dicts: sent to worker processes
            spec,
            inside=None if d.inside is None else d.inside.to_numpy(),
            n_replicates=cfg.effects.replicates,
            population_sizes={int(k): float(v) for k, v in zip(n_h.index.to_numpy(), n_h.to_numpy(), strict=True)} if cfg.effects.fpc else None,
            workers=cfg.effects.workers,
            rng=np.random.default_rng(cfg.study.seed),
            progress=progress,
        )
        key = list(zip(eff["outcome"], eff["method"], eff["scale"], strict=True))
        rse = rep.bse.reindex(key).to_numpy()
        eff["bse"] = np.where(np.isnan(rse), eff["bse"], rse)
        eff["se_type"] = np.where(np.isnan(rse), "model", "replicate")
        fit_warnings = dict(sorted((Counter(fit_warnings) + Counter(rep.fit_warnings)).items()))
    else:
        eff["se_type"] = "model"
    eff = _p_adjust(eff)
    from analysis.estimation import dont_know_analysis, top2_e_values

    # Rosenbaum bounds are not reported: they assume 1:1 pairs without replacement and
    # no survey weights (here controls are reused, tied and weighted), so their Gamma is
    # not valid for this design.  E-values on the top-2-box risk-ratio scale instead.
    sens = top2_e_values(frame, d, eff, spec)
    dk_rates, dk_sens = dont_know_analysis(frame, d, spec)
    from analysis.effects.reliability import cronbach_alpha, hedges_g

    items = frame.loc[:, list(spec.outcomes)].dropna()
    alpha = cronbach_alpha(items, list(spec.outcomes)) if len(spec.outcomes) > 1 else None
    t = frame["pop"] == 1
    g = {o: float(hedges_g(frame.loc[t, o].dropna().to_numpy(), frame.loc[~t, o].dropna().to_numpy())) for o in spec.outcomes}
    return {"dont_know": dk_rates, "dont_know_sensitivity": dk_sens, "direct": direct, "frame": frame, "effects": eff, "shifts": shifts, "sensitivity": sens, "replicates": rep, "alpha": alpha, "hedges_g": g, "not_estimable": failed, "fit_warnings": fit_warnings}


@dataclass(frozen=True)
class _CodeKeys:
    """The code a run's results depend on, as the keys of its cache and run id."""

    #: The estimation's code: neither the report's nor the POP part's sources.
    code: str
    packages: dict[str, str]
    #: The estimation steps' key: their code and the versions of the packages it runs on.
    estimation: str
    #: The report's key: it also covers the report's sources.
    report: str

    @classmethod
    def current(cls) -> _CodeKeys:
        """The keys of the code as it is now."""
        code = code_version(report=False, plans=False)
        packages = _packages()
        return cls(code=code, packages=packages, estimation=_key(code, packages), report=_key(code_version(), packages))


@dataclass(frozen=True)
class _RunInputs:
    """What a run reads (survey snapshot, admin extracts, participants, POP part) and their hashes."""

    snap: Path
    snap_hash: dict[str, str]
    dwse: Path
    vdab: Path
    admin_hash: dict[str, str]
    participants: Path | None
    part_hash: str
    #: The admin extracts' and the survey's mapping (:func:`_mapping_record`).
    mapping: dict[str, Any]
    #: The POP part's inputs with their hashes, or ``None`` without ``[plans] texts``.
    plans: dict[str, Any] | None


def _run_inputs(cfg: StudyConfig, progress: bool) -> _RunInputs:
    """The run's inputs and their hashes; a clear error for one that does not exist."""
    snap = resolve_snapshot(cfg, progress)
    snap_hash = _snapshot_hash(snap)
    dwse, vdab = cfg.path(cfg.admin.dwse), cfg.path(cfg.admin.vdab)
    for p, what in ((dwse, "admin.dwse"), (vdab, "admin.vdab")):
        if not p.exists():
            raise ConfigError("An admin extract does not exist", file=p, param=what, expected="an existing CSV or Parquet file", found="no such file", hint="check the path (relative to the configuration file)")
    admin_hash = {"dwse": sha256_file(dwse), "vdab": sha256_file(vdab)}
    participants = cfg.path(cfg.survey.participants) if cfg.survey.participants else None
    if participants is not None and not participants.is_file():
        raise ConfigError("The participants file does not exist", file=participants, param="survey.participants", expected="LimeSurvey's participants CSV export or participants.json", found="no such file", hint="check the path (relative to the configuration file)")
    part_hash = sha256_file(participants) if participants is not None else ""
    mapping = _mapping_record(cfg)
    _preflight_survey(cfg, snap)
    return _RunInputs(snap=snap, snap_hash=snap_hash, dwse=dwse, vdab=vdab, admin_hash=admin_hash, participants=participants, part_hash=part_hash, mapping=mapping, plans=_plans_inputs(cfg))


def _open_run_dir(derived: Path, cfg: StudyConfig, cfg_dict: dict[str, Any], inputs: _RunInputs, keys: _CodeKeys) -> tuple[Path, bool]:
    """The run folder (named by the run's inputs, settings and code), not complete until the run says so.

    The second element says whether a previous run in it did not finish.
    """
    from survey.files import remove_stale_temporaries

    plans_parts = [inputs.plans, code_version(report=False)] if inputs.plans is not None else []
    run_id = f"{cfg.study.name}-{_key(inputs.admin_hash, inputs.snap_hash, cfg_dict, keys.estimation, *plans_parts)[:12]}"
    run_dir = derived / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    unfinished = (run_dir / "run.log").exists() and not (run_dir / COMPLETE_MARKER).exists()
    (run_dir / COMPLETE_MARKER).unlink(missing_ok=True)  # not complete until this run says so
    remove_stale_temporaries(run_dir)
    return run_dir, unfinished


class _Steps:
    """A run's cached steps and what happened to them: reused, computed, warnings the user must see."""

    def __init__(self, cache: _Cache, say: Callable[[str], None]) -> None:
        self.cache = cache
        self.say = say
        self.reused: list[str] = []
        self.computed: list[str] = []
        self.warnings: list[str] = []

    def __call__(self, name: str, key: str, fn: Callable[[], Any]) -> Any:
        """The value of step ``name`` under ``key``: from the cache, or computed by ``fn`` and stored."""
        got = self.cache.get(name, key)
        if got is not None:
            self.reused.append(name)
            self.say(f"[{name}] reused (unchanged inputs, settings and code)")
            log.info("%s reused (key %s)", name, key[:12])
            return got
        self.say(f"[{name}] computing ...")
        t0 = time.perf_counter()
        value = fn()
        self.cache.put(name, key, value)
        self.computed.append(name)
        log.info("%s computed in %.1f s", name, time.perf_counter() - t0)
        return value

    def warn(self, msg: str) -> None:
        """A warning for the run's summary, its log and the console."""
        self.warnings.append(msg)
        log.warning(msg)
        self.say(f"WARNING: {msg}")


@dataclass(frozen=True)
class _RunContext:
    """What every section of a run reads: the settings, the inputs, the code keys, the run folder and its steps."""

    cfg: StudyConfig
    cfg_dict: dict[str, Any]
    spec: EstimatorSpec
    derived: Path
    run_dir: Path
    stage: str
    progress: bool
    say: Callable[[str], None]
    keys: _CodeKeys
    inputs: _RunInputs
    steps: _Steps
    #: ``time.perf_counter()`` when the run started.
    t_all: float

    def finished(self, **result: Any) -> RunResult:
        """The run's result, logged as finished (the completion marker is written)."""
        log.info("run finished in %.1f s", time.perf_counter() - self.t_all)
        s = self.steps
        return RunResult(run_dir=self.run_dir, reused=tuple(s.reused), computed=tuple(s.computed), stage=self.stage, warnings=tuple(s.warnings), **result)


def _run_locked(cfg: StudyConfig, derived: Path, *, stage: str, progress: bool, echo: Callable[[str], None] | None) -> RunResult:
    say = echo or (lambda s: None)
    from analysis.estimation import EstimatorSpec
    from survey.files import remove_stale_temporaries

    cache = _Cache(derived)
    for folder in (cache.root, derived):  # shared with other studies: only what is clearly abandoned
        remove_stale_temporaries(folder, older_than=24 * 3600)
    keys = _CodeKeys.current()
    spec = EstimatorSpec.from_config(cfg)
    cfg_dict = cfg.to_dict()
    inputs = _run_inputs(cfg, progress)
    run_dir, unfinished = _open_run_dir(derived, cfg, cfg_dict, inputs, keys)
    scope = contextlib.ExitStack()
    scope.enter_context(run_scope(run_dir / "run.log"))
    t_all = time.perf_counter()
    try:
        if unfinished:  # a run that was killed (SIGKILL, power loss) cannot say so itself
            log.warning("the previous run in this folder did not finish (failed, interrupted or killed); its partial outputs are replaced")
        log.info("run %s (stage %s) started on %s, Python %s, %s cores", run_dir.name, stage, platform.node(), platform.python_version(), __import__("os").cpu_count())
        run = _RunContext(cfg=cfg, cfg_dict=cfg_dict, spec=spec, derived=derived, run_dir=run_dir, stage=stage, progress=progress, say=say, keys=keys, inputs=inputs, steps=_Steps(cache, say), t_all=t_all)
        return _run_sections(run)
    except KeyboardInterrupt:
        log.error("run stopped after %.1f s; the run folder is incomplete (no %s marker)", time.perf_counter() - t_all, COMPLETE_MARKER)
        raise
    except BaseException as exc:
        log.error("run failed after %.1f s: %s: %s", time.perf_counter() - t_all, type(exc).__name__, exc, exc_info=not isinstance(exc, PopevalError))
        raise
    finally:
        scope.close()


def _run_sections(run: _RunContext) -> RunResult:
    """The run's steps in order, each cached by the key of what it depends on."""
    cfg, cfg_dict, inputs, spec, code_key = run.cfg, run.cfg_dict, run.inputs, run.spec, run.keys.estimation
    _warn_settings(run)

    # ---- ingest + link (the admin population)
    admin_key = _key("admin", inputs.admin_hash, cfg_dict["admin"], inputs.mapping["hash"], code_key)
    link_key = _key("link", admin_key, inputs.snap_hash, inputs.part_hash, cfg.study.school_years, cfg.survey.key_attribute, code_key)
    pop_out = run.steps("ingest+link", link_key, lambda: _link_step(cfg, run.derived, admin_key, inputs.dwse, inputs.vdab, inputs.participants, inputs.snap, run.progress, run.say))
    population: pd.DataFrame = pop_out["population"]
    mg = pop_out["margins"]

    # ---- the POP part, early so that a problem in the coding sheets stops the run at once
    # (its own step: the estimation's keys do not depend on it)
    plans = None
    if inputs.plans is not None and run.stage != "design":
        plans_key = _key(admin_key, cfg.study.seed, cfg.study.disclosure_threshold, run.keys.packages)
        plans = _plans_step(cfg, population, run.derived / pop_out["db"], run.steps, run.say, run.steps.warnings, plans_key)

    # ---- survey: parse
    parse_key = _key("parse", inputs.snap_hash, inputs.part_hash, cfg.survey.key_attribute, inputs.mapping["survey"], code_key)
    resp = run.steps("survey", parse_key, lambda: _parse_step(cfg, inputs))

    # ---- design (never reads outcomes)
    design_key = _key("design", link_key, parse_key, cfg_dict["weighting"], cfg_dict["matching"], cfg.study.seed, code_key)
    des = run.steps("design", design_key, lambda: _design_step(resp, population, mg, spec))
    balance_df = _balance_table(des["balance"], spec.covariates)
    if run.stage == "design":
        return _finish_design(run, des, balance_df)
    _check_design_lock(run, des["hash"])

    # ---- outcomes
    out_key = _key("outcomes", design_key, cfg_dict["effects"], code_key)
    outc = run.steps("outcomes", out_key, lambda: _outcomes_step(resp, population, des, mg, spec, cfg, run.progress))
    fits = _outcome_warnings(run, des, outc)

    # ---- bundle and exports
    eff = outc["effects"].copy()
    bundle_dir = _write_run_bundle(run, _bundle_tables(pop_out, des, outc, eff, balance_df), _bundle_estimates(run, resp, pop_out, des, outc, eff), _bundle_manifest(run, des["hash"], fits), plans)
    flags = resp.frame.loc[:, ["response_id", *[f"{o}_dont_know" for o in spec.outcomes if f"{o}_dont_know" in resp.frame.columns]]]
    _write_exports(outc["frame"], des["design"], run.run_dir / "exports", flags=flags, outcomes=cfg.survey.mapping().outcome_list())
    run.steps.computed.append("exports")

    # ---- report
    report = _report_section(run, bundle_dir) if cfg.report.render else {}
    head = eff[(eff["method"] == MAIN_METHOD) & (eff["scale"] == "likert")].loc[:, ["outcome", "estimate", "ci_lower", "ci_upper", "p_holm"]]
    _mark_complete(run.run_dir, run.stage, ["bundle", "exports", *([] if not report else ["report"])])
    return run.finished(bundle=bundle_dir, report=report, headline=head.reset_index(drop=True), not_estimable=outc["not_estimable"])


def _warn_settings(run: _RunContext) -> None:
    """Warnings about settings that make the results unfit for publication."""
    if run.cfg.study.disclosure_threshold <= 1:
        run.steps.warn("disclosure control disabled (study.disable_disclosure_control = true, threshold 1): do not publish this report")
    if 0 < run.cfg.effects.replicates < ADVISED_REPLICATES:
        run.steps.warn(
            f"only {run.cfg.effects.replicates} end-to-end replicates: the standard errors, intervals and p-values are imprecise "
            f"(use at least {ADVISED_REPLICATES}, 100 or more for publication)"
        )


def _parse_step(cfg: StudyConfig, inputs: _RunInputs) -> Any:
    """The survey step: the snapshot parsed into one row per respondent."""
    from survey.parse import parse_snapshot

    return parse_snapshot(inputs.snap, mapping=cfg.survey.mapping(), participants=inputs.participants, key_attribute=cfg.survey.key_attribute, pseudo_key=_pseudo_key(cfg))


def _design_lock(run: _RunContext, design_hash: str) -> tuple[Path, str]:
    """The design lock's file and text.

    One lock per study and set of inputs: new data (a new wave) gets a new design; changing the
    design for the same data after the lock is refused.
    """
    inputs = run.inputs
    path = run.derived / "locks" / f"{run.cfg.study.name}-{_key(inputs.admin_hash, inputs.snap_hash)[:12]}.design.lock.json"
    record = {"design_hash": design_hash, "settings": {k: run.cfg_dict[k] for k in ("weighting", "matching")}, "seed": run.cfg.study.seed, "inputs": {"admin": inputs.admin_hash, "survey": inputs.snap_hash}}
    return path, json.dumps(record, indent=2, sort_keys=True) + "\n"


def _finish_design(run: _RunContext, des: Mapping[str, Any], balance_df: pd.DataFrame) -> RunResult:
    """``--stage design``: the design locked, its balance and weighting margins written and shown."""
    from survey.files import atomic_write

    lock_path, lock_text = _design_lock(run, des["hash"])
    with atomic_write(lock_path) as fh:
        fh.write(lock_text)
    for name, table in (("balance", balance_df), ("weighting_margins", des["weighting_margins"])):
        with atomic_write(run.run_dir / "design" / f"{name}.csv", newline="") as fh:
            table.to_csv(fh, index=False, lineterminator="\n", float_format="%.12g")
    run.say(des["balance"].summary() if hasattr(des["balance"], "summary") else balance_df.to_string())
    _mark_complete(run.run_dir, run.stage, ["design/balance.csv", "design/weighting_margins.csv"])
    return run.finished(bundle=None, report={})


def _check_design_lock(run: _RunContext, design_hash: str) -> None:
    """Refuse a design that differs from the locked one; lock it when it is not locked yet."""
    from survey.files import atomic_write

    lock_path, lock_text = _design_lock(run, design_hash)
    if not lock_path.exists():
        with atomic_write(lock_path) as fh:
            fh.write(lock_text)
        return
    try:
        locked = json.loads(lock_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DesignLockError(
            "The design lock cannot be read", file=lock_path, expected="the JSON written by `popeval run --stage design`", found=str(exc), hint="restore the file, or rerun `popeval run --stage design` deliberately (and document why)"
        ) from exc
    if locked.get("design_hash") != design_hash:
        raise DesignLockError(
            "The design changed after it was locked",
            file=lock_path,
            expected=f"design hash {locked.get('design_hash', '')[:16]}",
            found=f"design hash {design_hash[:16]}",
            hint="the weights, propensity score or matching differ from the locked design; rerun "
            "`popeval run --stage design` deliberately (and document why) before estimating outcomes",
        )


def _outcome_warnings(run: _RunContext, des: Mapping[str, Any], outc: Mapping[str, Any]) -> Counter[str]:
    """The methods not estimable and the fits' expected warnings, as the run's warnings; returns the fits' counts."""
    for r in outc["not_estimable"].itertuples():
        run.steps.warnings.append(f"{r.method} on {r.outcome} not estimable: {r.reason}")
        run.say(f"WARNING: {r.method} on {r.outcome} not estimable: {r.reason}")
    fits = Counter(des["design"].diagnostics.get("fit_warnings", {})) + Counter(outc.get("fit_warnings", {}))
    from analysis.fitwarnings import describe_fit_warning

    for what, n in sorted(fits.items()):
        run.steps.warnings.append(describe_fit_warning(what, n))
    return fits


def _bundle_tables(pop_out: Mapping[str, Any], des: Mapping[str, Any], outc: Mapping[str, Any], eff: pd.DataFrame, balance_df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The bundle's tables of the survey part."""
    return {
        **_profile_tables(pop_out["profile"]),
        "linkage": _linkage_table(pop_out["linkage"]),
        "response_flow": pd.DataFrame({"step": list(des["flow"]), "n": list(des["flow"].values())}),
        "weighting_margins": des["weighting_margins"],
        "weight_diagnostics": des["weight_diagnostics"],
        "balance": balance_df,
        "effects": eff,
        "category_shifts": outc["shifts"],
        "sensitivity": outc["sensitivity"],
        "dont_know": outc["dont_know"],
        "dont_know_sensitivity": outc["dont_know_sensitivity"],
        "overlap": des["design"].overlap.to_frame(),
        "overlap_excluded": des["design"].overlap.profile,
        "controlled_direct_effect": outc["direct"],
        "not_estimable": outc["not_estimable"],
    }


def _bundle_estimates(run: _RunContext, resp: Any, pop_out: Mapping[str, Any], des: Mapping[str, Any], outc: Mapping[str, Any], eff: pd.DataFrame) -> dict[str, Any]:
    """The bundle's ``estimates.json``: every estimate, the estimand, the design and the replicates."""
    population: pd.DataFrame = pop_out["population"]
    d = des["design"]
    alpha = outc["alpha"]
    rep = outc["replicates"]
    n_rep = run.cfg.effects.replicates
    return {
        "effects": {
            f"{r.outcome}|{r.method}|{r.scale}": {"estimate": r.estimate, "bse": r.bse, "se_type": r.se_type, "model_bse": r.model_bse, "ci_lower": r.ci_lower, "ci_upper": r.ci_upper, "p_value": r.p_value, "p_holm": r.p_holm, "p_bh": r.p_bh}
            for r in eff.itertuples()
        },
        "estimand": d.overlap.estimand(),
        "not_estimable": [{"outcome": r.outcome, "method": r.method, "code": r.code, "reason": r.reason} for r in outc["not_estimable"].itertuples()],
        "population": {"persons": len(population), "pop_users": int(population["pop"].sum())},
        "response_flow": des["flow"],
        "design": {"hash": des["hash"], "n_treated": d.n_treated, "n_control": d.n_control, "n_matched_treated": d.n_matched_treated, "n_matched_control": d.n_matched_control},
        "reliability": {"cronbach_alpha": float(getattr(alpha, "alpha", np.nan)), "items": list(run.spec.outcomes)},
        "hedges_g_unadjusted": outc["hedges_g"],
        "margins_version": getattr(pop_out["margins"], "version", None),
        "response_detail": _response_detail(resp, population, outc["frame"], run.spec.outcomes),
        "replicates": None
        if rep is None
        else {
            "n_replicates": int(rep.n_replicates.iloc[0]),
            "n_failed": int(rep.n_failed.iloc[0]),
            "type": "Rao-Wu rescaling bootstrap within POP strata" + (" with finite-population correction" if run.cfg.effects.fpc else "") + "; every replicate re-raked, propensity score re-fitted and re-matched",
            "advised_minimum": ADVISED_REPLICATES,
            "below_advised_minimum": bool(n_rep < ADVISED_REPLICATES),
        },
    }


def _bundle_manifest(run: _RunContext, design_hash: str, fits: Counter[str]) -> dict[str, Any]:
    """The bundle's ``manifest.json``: versions, settings, inputs' hashes, mapping and outcomes."""
    cfg_dict, inputs = run.cfg_dict, run.inputs
    return {
        "popeval_version": _version(),
        "commit": _commit(),
        "code_version": run.keys.code,
        "seed": run.cfg.study.seed,
        "config": {
            **cfg_dict,
            "study": {k: v for k, v in cfg_dict["study"].items() if k != "derived_dir"},  # where outputs go is not part of the specification
            "disclosure": {"threshold": run.cfg.study.disclosure_threshold},
        },
        "inputs": {
            **{f"admin/{k}": {"file": p.name, "sha256": v} for (k, v), p in zip(inputs.admin_hash.items(), (inputs.dwse, inputs.vdab), strict=True)},
            **{f"survey/{k}": {"sha256": v} for k, v in inputs.snap_hash.items()},
        },
        "packages": run.keys.packages,
        "design_hash": design_hash,
        "mapping": inputs.mapping,
        "outcomes": _outcome_table(run.cfg, run.spec.outcomes),
        # the expected fit warnings of the design and the estimation (replicates summed): what ran
        # close to a model's limits, for a reviewer of the bundle
        "fit_warnings": {what: int(n) for what, n in sorted(fits.items())},
        "provenance": _provenance(inputs.dwse, inputs.vdab),
        "note": "synthetic demo study" if _provenance(inputs.dwse, inputs.vdab) == "synthetic" else "",
    }


def _write_run_bundle(run: _RunContext, tables: dict[str, pd.DataFrame], estimates: dict[str, Any], manifest: dict[str, Any], plans: Mapping[str, Any] | None) -> Path:
    """The run's bundle with the POP part's tables and inputs (once coded); returns its folder."""
    from analysis.bundle import TABLES, write_bundle

    bundle_dir = run.run_dir / "bundle"
    for extra in [k for k in tables if k not in TABLES]:
        tables.pop(extra)
    extra_tables = None
    if plans is not None:
        manifest["inputs"].update(plans["inputs"])
        manifest["plans"] = plans["info"]
        if plans["tables"]:
            from analysis.plans.tables import PLANS_TABLES, check_plans_tables

            tables.update(check_plans_tables(plans["tables"]))
            extra_tables = PLANS_TABLES
    write_bundle(bundle_dir, tables, estimates, manifest, extra_tables=extra_tables)
    run.steps.computed.append("bundle")
    return bundle_dir


def _report_section(run: _RunContext, bundle_dir: Path) -> dict[str, Path]:
    """The report: reused when the bundle, the report's settings and its code are unchanged, else rendered."""
    rkey = _key("report", _bundle_digest(bundle_dir), run.cfg_dict["report"], run.cfg.study.language, run.keys.report)
    outdir = run.run_dir / "report"
    marker = outdir / "render.json"
    try:
        prev = json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        prev = {}
    if prev.get("key") == rkey and all((outdir / Path(p).name).exists() for p in prev.get("outputs", {}).values()):
        run.steps.reused.append("report")
        return {f: outdir / Path(p).name for f, p in prev["outputs"].items()}
    run.say("[report] rendering ...")
    t0 = time.perf_counter()
    report = _render_run_report(run, bundle_dir, outdir, rkey)
    run.steps.computed.append("report")
    log.info("report rendered in %.1f s", time.perf_counter() - t0)
    return report


def _render_run_report(run: _RunContext, bundle_dir: Path, outdir: Path, rkey: str) -> dict[str, Path]:
    """The report rendered into a temporary folder that replaces ``outdir`` when complete, with its ``render.json``."""
    from datetime import UTC, datetime

    from analysis.report.render import render_report
    from survey.files import atomic_dir

    run_time = datetime.now(UTC).replace(microsecond=0).isoformat()
    with atomic_dir(outdir) as tmp_out:
        report_params: dict[str, Any] = {"run_time": run_time}
        if run.cfg.study.disclosure_threshold <= 1:  # the report then carries a do-not-publish notice
            report_params["disclosure_control_disabled"] = True
        rr = render_report(bundle_dir, lang=run.cfg.study.language, out=tmp_out, formats=run.cfg.report.formats, params=report_params)
        names = {f: Path(p).name for f, p in rr.outputs.items()}
        (tmp_out / "render.json").write_text(json.dumps({"key": rkey, "outputs": names}, indent=2) + "\n", encoding="utf-8")
    return {f: outdir / n for f, n in names.items()}


def _plans_inputs(cfg: StudyConfig) -> dict[str, Any] | None:
    """The POP part's inputs with their hashes, or ``None`` when the study has no ``[plans] texts``."""
    if not cfg.plans.texts:
        return None
    from analysis.plans.stage import input_hashes

    return input_hashes(cfg)


def _plans_step(
    cfg: StudyConfig, population: pd.DataFrame, db: Path, step: Callable[[str, str, Callable[[], Any]], Any], say: Callable[[str], None], warnings_: list[str], base_key: str
) -> dict[str, Any]:
    """The POP part of a run: advance it (sample, sheets, ingest) and, once coded, its tables (cached).

    Returns the manifest's ``inputs`` entries, the ``plans`` manifest record and the ``plans_*``
    tables (empty until the codes are reconciled; a warning then says what to do next).
    """
    from analysis.plans.stage import advance, compute_tables

    state = advance(cfg, db=db if db.exists() else None)  # writes the sample, blank sheets or the reconciliation sheet: never the researchers' work
    inputs = _plans_inputs(cfg) or {}
    info: dict[str, Any] = {"state": state.state}
    if not state.ready:
        msg = f"POP part not in the report yet: {state.message}"
        warnings_.append(msg)
        log.warning("POP part: %s", state.state)
        say(f"WARNING: {msg}")
        return {"inputs": inputs, "info": info, "tables": {}}
    key = _key("plans", base_key, inputs, cfg.to_dict()["plans"], code_version(report=False))
    tables, more = step("plans", key, lambda: compute_tables(cfg, population=population))
    info.update(more)
    info["code_version"] = code_version(report=False)
    return {"inputs": inputs, "info": info, "tables": tables}


def _mark_complete(run_dir: Path, stage: str, outputs: list[str]) -> None:
    """The completion marker, written last: this run folder holds everything the run produced."""
    from survey.files import atomic_write

    with atomic_write(run_dir / COMPLETE_MARKER) as fh:
        fh.write(json.dumps({"stage": stage, "outputs": outputs}, indent=2, sort_keys=True) + "\n")


def _bundle_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("popeval")
    except PackageNotFoundError:  # pragma: no cover
        return "0+unknown"
