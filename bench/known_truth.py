"""Known-truth simulation: bias and coverage of the study's main estimator over synthetic studies.

Each synthetic study is one draw of the whole data-generating process of
:func:`analysis.synth.generate` (a new admin universe, POP uptake, survey sample, response and
outcomes) under its own seed.  For every study the script runs the real pipeline pieces, exactly as
``popeval run`` does in its *outcomes* step:

1. generate the study (admin extracts as Parquet, LimeSurvey snapshot, ``truth/``) in a temporary
   folder that is removed afterwards;
2. ingest the extracts into an in-memory DuckDB, link the population and the survey participants,
   count the population margins (POP x educ, age band, sex, sector, company size);
3. parse the survey snapshot and build the respondent analysis frame with design weights;
4. the main estimator (:class:`analysis.estimation.EstimatorSpec` defaults): rake to the margins,
   survey-weighted propensity score, 1:1 nearest-neighbour matching with replacement (caliper
   0.2 SD), matched WLS with covariate adjustment, on the Likert scale and as top-2-box;
5. its end-to-end replicate SE (Rao-Wu rescaling bootstrap within the POP strata with finite
   population correction; every replicate re-raked, the propensity score re-fitted and re-matched)
   and the 95 % normal interval ``estimate +- 1.96 SE``;
6. two comparison estimators: the naive unweighted, unmatched difference of respondent means
   (method ``naive``) and the unweighted-but-matched estimate (propensity score and matching on the
   unweighted respondents, matched WLS without survey weights).

The estimand is the finite-population ATT among the POP users of each synthetic population,
``mean(Y1 - Y0 | POP)``, read from the study's ``truth/truth.json`` (the pipeline never reads it).

Every study's result is appended as one JSON line to ``<out>.jsonl`` as soon as it finishes; a
rerun skips the seeds already there, so an interrupted run resumes.  The summary per outcome and
scale (bias and its Monte-Carlo SE, RMSE, empirical SD against the mean replicate SE, coverage and
its Monte-Carlo SE, the naive estimator's bias) goes to ``<out>.md`` and ``<out>.json``.

Run from the repository root (the scenario matrix; the committed run)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 uv run --frozen python bench/known_truth.py \
        --scenarios all --studies 200 --persons 100000 --replicates 20 --workers 1 --seed0 3000 \
        --out bench/results/known_truth_matrix

``--summarise-only`` rewrites the summary from the JSONL without running studies.

Cost per study (100,000 persons, about 940 respondents, 20 replicates, one process on a shared
2-core machine): generate 8 s, ingest and link 6 s, parse 1 s, estimate 7 s, replicates 5 s.  The
replicates were 15 s before the ordered logit was fitted by Newton's method with its analytic
Hessian (the same maximum, found in 4-5 steps instead of about 45 BFGS evaluations); the matrix
skips the unweighted-matched comparison (its summary does not use it).  What a study estimates is
unchanged.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Tolerances of the issue: |bias| of the main estimator on the Likert scale and 95 % CI coverage.
BIAS_TOLERANCE_LIKERT = 0.02
COVERAGE_RANGE = (0.93, 0.97)
Z95 = 1.959963984540054
SCALES = ("likert", "top2")
#: The rules of the secondary record fields: ``matching_matchit_ties`` (``ties="matchit"``) and
#: ``extrapolated`` (:func:`analysis.matching.overlap.extrapolated`).  Records without ``rules``
#: used MatchIt's pre-4.7 rule (the left one of two equally near controls) and a sample-level
#: sparse-cell rule for ``extrapolated``; the summary leaves their ``extrapolated`` out.
RULES = {"matchit_ties": "MatchIt 4.7", "extrapolated": "design cells, sample cells without controls, score range"}
#: Every published estimator of the effects table (as `popeval run` names them internally).
METHODS = ("matching", "regression", "ipw", "aipw", "ologit", "naive")
#: The scenario matrix: switchable features of :class:`analysis.synth.SynthParams` (one harder
#: feature at a time) and a factor on the number of persons (``small_wave``: about 600 respondents
#: at 200,000 persons x 0.32).  ``uptake_interaction`` makes the propensity model wrong and keeps
#: the outcome model right, ``outcome_interaction`` the reverse (double robustness).
SCENARIOS: dict[str, dict[str, Any]] = {
    "baseline": {"params": {}},
    "continuous_age": {"params": {"b_age_exact": 0.5, "o_age_exact": 0.35}},
    "heterogeneous_effects": {"params": {"tau_ps": 0.6}},
    "uptake_interaction": {"params": {"b_interaction": 1.2}},
    "outcome_interaction": {"params": {"o_interaction": 1.2}},
    "informative_response": {"params": {"r_pop_high": 0.5, "r_outcome": 0.3}},
    "informative_dont_know": {"params": {"dk_outcome": 0.9}},
    "hidden_confounder_weak": {"params": {"b_hidden": 0.3, "o_hidden": 0.15}},
    "hidden_confounder_strong": {"params": {"b_hidden": 0.8, "o_hidden": 0.4}},
    "weak_overlap": {"params": {"overlap_scale": 2.0}},
    "small_wave": {"params": {}, "persons_factor": 0.32},
    "centre_clustering": {"params": {"sd_centre": 0.35}},
}


# --------------------------------------------------------------------------- one study


def _estimand_truth(units: pd.DataFrame, excluded: list[dict[str, Any]], top_box: int = 4) -> dict[str, dict[str, float]]:
    """The truth for the run's estimand: the ATT among the POP users outside the excluded cells.

    Cells on variables that the generator's unit file lacks (e.g. the age band at application)
    cannot be removed here and are listed in ``not_applied``.
    """
    from survey.questionnaire import OUTCOMES

    keep = units["pop"].astype(bool).to_numpy()
    not_applied = []
    for g in excluded:
        if g["variable"] in units.columns:
            keep &= units[g["variable"]].astype(str).to_numpy() != g["category"]
        else:
            not_applied.append(f"{g['variable']}={g['category']}")
    out: dict[str, Any] = {"n_treated": int(keep.sum()), "not_applied": not_applied}
    for o in OUTCOMES:
        y1, y0 = units[f"y1_{o.name}"].to_numpy()[keep], units[f"y0_{o.name}"].to_numpy()[keep]
        out[o.name] = {"likert": float((y1 - y0).mean()), "top2": float(((y1 >= top_box).astype(float) - (y0 >= top_box)).mean())}
    return out


def run_study(seed: int, persons: int, replicates: int, tmp_root: str | None = None, no_fpc: bool = False, fpc: bool = False, scenario: str = "baseline", unweighted: bool = True) -> dict[str, Any]:
    """One synthetic study (:func:`_run_study`) with popeval's loggers at ERROR for its duration only."""
    loggers = [logging.getLogger("analysis"), logging.getLogger("survey")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        return _run_study(seed, persons, replicates, tmp_root, no_fpc, fpc, scenario, unweighted)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _run_study(seed: int, persons: int, replicates: int, tmp_root: str | None, no_fpc: bool, fpc: bool, scenario: str, unweighted: bool) -> dict[str, Any]:
    """Generate one synthetic study, run the main estimator and its replicate SE, compare to the truth.

    Parameters
    ----------
    seed
        Seed of :func:`analysis.synth.generate` (one synthetic population and survey per seed).
    persons
        Persons in the synthetic admin universe.
    replicates
        End-to-end Rao-Wu replicates for the standard error (run serially).
    tmp_root
        Folder for the temporary study files (default: the system's temporary folder).
    no_fpc
        With ``fpc``: also compute the replicate SE without the finite-population correction (same
        bootstrap draws), recorded as ``bse_nofpc``: the diagnostic of the coverage
        investigation.
    fpc
        Apply the finite-population correction in the main replicate SE.  Off by default, as in
        ``popeval run`` (``effects.fpc``).
    scenario
        A key of :data:`SCENARIOS` (the synthetic world's harder features).
    unweighted
        Also estimate the unweighted-but-matched comparison (``unweighted_matched``; NaN when off:
        the scenario matrix does not summarise it and skips its cost).

    Returns
    -------
    dict
        JSON-serialisable record: sizes, timings and, per outcome, the truth, the main estimate with
        its replicate and model SEs, the naive and the unweighted-matched estimates.
    """
    from dataclasses import replace as _replace

    import duckdb

    from analysis.estimation import (
        EstimatorSpec,
        design_stage,
        end_to_end_variance,
        outcome_stage,
        top2_e_values,
        weight_stage,
    )
    from analysis.pipeline import _analysis_frame, _estimate_methods
    from analysis.population import ingest, link, load_population, margins
    from analysis.synth import SynthParams, generate
    from survey.parse import parse_snapshot

    spec = EstimatorSpec(methods=METHODS)
    sc = SCENARIOS[scenario]
    params = SynthParams(**sc["params"])
    n_persons = round(persons * float(sc.get("persons_factor", 1.0)))
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"known_truth_{seed}_", dir=tmp_root))
    try:
        generate(persons=n_persons, seed=seed, out=tmp, file_format="parquet", params=params)
        truth = json.loads((tmp / "truth" / "truth.json").read_text(encoding="utf-8"))
        units = pd.read_parquet(tmp / "truth" / "units.parquet")
        t["generate"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        snap = next((tmp / "survey").glob("*/*/manifest.json")).parent
        con = duckdb.connect(":memory:", config={"threads": 1})
        try:
            ingest(tmp / "admin" / "dwse_applications.parquet", tmp / "admin" / "vdab_trajectories.parquet", db=con)
            link(con, participants=snap)
            population = load_population(con)
            mg = margins(con, [k[0] if len(k) == 1 else tuple(k) for k in spec.margins])
        finally:
            con.close()
        t["ingest_link"] = time.perf_counter() - t1

        t1 = time.perf_counter()
        resp = parse_snapshot(snap)
        t["parse"] = time.perf_counter() - t1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # design (never reads outcomes), then outcomes: as the pipeline's design and outcomes steps
    t1 = time.perf_counter()
    frame_d, flow = _analysis_frame(resp, population, spec.outcomes, with_outcomes=False)
    wdesign = weight_stage(frame_d, mg.totals, spec)
    design = design_stage(frame_d, wdesign.weights, spec, with_balance=False)
    frame, _ = _analysis_frame(resp, population, spec.outcomes, with_outcomes=True)
    # every method as the pipeline runs them: a secondary method that fails on one outcome (e.g. a
    # singular ordered-logit sandwich in a small wave) is not estimable there (NaN), not fatal
    est, _shifts, _failed, _direct, _fits = _estimate_methods(frame, design, spec)
    # unweighted but matched: propensity score and matching on unit weights, no survey weights
    if unweighted:
        design_u = design_stage(frame_d, np.ones(len(frame_d)), spec, with_balance=False)
        est_u = outcome_stage(frame, design_u, spec, methods=("matching",)).table
    else:
        est_u = est.iloc[0:0]
    # MatchIt's tie rule (one tied control, by row order) on the same data: the ties comparison
    spec_m = _replace(spec, ties="matchit")
    design_m = design_stage(frame_d, wdesign.weights, spec_m, with_balance=False)
    est_m = outcome_stage(frame, design_m, spec_m, methods=("matching",)).table
    estimand = design.overlap.estimand()
    truth_e = _estimand_truth(units, estimand["excluded_groups"])
    t["estimate"] = time.perf_counter() - t1

    t1 = time.perf_counter()
    n_h = population.groupby("pop").size()
    rep = end_to_end_variance(
        frame,
        mg.totals,
        spec,
        n_replicates=replicates,
        population_sizes={int(k): float(v) for k, v in n_h.items()} if fpc else None,
        workers=1,
        rng=np.random.default_rng(seed),
        inside=design.inside.to_numpy(),
        methods=METHODS,
    )
    rep_nofpc = None
    if no_fpc and fpc:
        rep_nofpc = end_to_end_variance(frame, mg.totals, spec, n_replicates=replicates, population_sizes=None, workers=1, rng=np.random.default_rng(seed), inside=design.inside.to_numpy(), methods=("matching",))
    t["replicates"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0

    def pick(table: pd.DataFrame, outcome: str, method: str, scale: str, col: str = "estimate") -> float:
        r = table[(table["outcome"] == outcome) & (table["method"] == method) & (table["scale"] == scale)]
        return float(r[col].iloc[0]) if len(r) else float("nan")

    main = est[est["method"] == "matching"].copy()
    se_map = rep.bse
    main["ci_lower"] = [r.estimate - Z95 * float(se_map.get((r.outcome, "matching", r.scale), np.nan)) for r in main.itertuples()]
    main["ci_upper"] = [r.estimate + Z95 * float(se_map.get((r.outcome, "matching", r.scale), np.nan)) for r in main.itertuples()]
    try:
        ev = top2_e_values(frame, design, main, spec).set_index("outcome")
    except Exception:
        ev = pd.DataFrame()

    outcomes: dict[str, Any] = {}
    for o in spec.outcomes:
        tr = truth["outcomes"][o]
        rec: dict[str, Any] = {
            "population_naive_difference": float(tr["naive_difference"]),
            "population_mean_treated": float(tr["population_mean_treated"]),
            "n_observed": int(frame[o].notna().sum()),
        }
        for scale in SCALES:
            e = pick(est, o, "matching", scale)
            se = float(rep.bse.get((o, "matching", scale), float("nan")))
            methods_rec = {}
            for meth in METHODS:
                if meth == "ologit" and scale != "top2":
                    continue
                mse = float(rep.bse.get((o, meth, scale), float("nan")))
                methods_rec[meth] = {"estimate": pick(est, o, meth, scale), "bse": mse}
                if "extrapolated" in est.columns:
                    methods_rec[meth]["extrapolated"] = pick(est, o, meth, scale, "extrapolated")
            rec[scale] = {
                "truth": float(truth_e[o][scale]),
                "truth_all_pop": float(tr["att_likert" if scale == "likert" else "att_top2"]),
                "methods": methods_rec,
                "matching_matchit_ties": pick(est_m, o, "matching", scale),
                "estimate": e,
                "bse": se,
                "model_bse": pick(est, o, "matching", scale, "bse"),
                **({"bse_nofpc": float(rep_nofpc.bse.get((o, "matching", scale), float("nan")))} if rep_nofpc is not None else {}),
                "ci_lower": e - Z95 * se,
                "ci_upper": e + Z95 * se,
                "naive": pick(est, o, "naive", scale),
                "unweighted_matched": pick(est_u, o, "matching", scale),
            }
        if o in ev.index:
            rec["e_value_top2"] = float(ev.loc[o, "e_value"])
            rec["e_value_top2_ci"] = float(ev.loc[o, "e_value_ci"])
        outcomes[o] = rec
    n_treated = int((frame["pop"] == 1).sum())
    return {
        "seed": int(seed),
        "scenario": scenario,
        # the rules behind the secondary columns (records without them predate these rules)
        "rules": dict(RULES),
        "estimand": {k: estimand[k] for k in ("name", "n_treated", "n_treated_excluded", "share_treated_excluded_weighted", "excluded_groups")},
        "truth_estimand_not_applied": truth_e["not_applied"],
        "fpc": bool(fpc),
        "persons": int(persons),
        "persons_generated": int(n_persons),
        "replicates": int(replicates),
        "replicates_ok": int(rep.n_replicates.iloc[0]),
        "population_size": len(population),
        "population_pop": int(population["pop"].sum()),
        "truth_population_size": int(truth["population_size"]),
        "truth_treated": int(truth["treated"]),
        "respondents": len(frame),
        "respondents_pop": n_treated,
        "matched_treated": int(design.n_matched_treated),
        "matched_control": int(design.n_matched_control),
        "flow": {k: int(v) for k, v in flow.items()},
        "outcomes": outcomes,
        "seconds": {k: round(v, 3) for k, v in t.items()},
    }


def _worker(args: tuple[int, int, int, str | None, bool, bool, str, bool]) -> dict[str, Any]:
    seed, persons, replicates, tmp_root, no_fpc, fpc, scenario, unweighted = args
    try:
        return run_study(seed, persons, replicates, tmp_root, no_fpc, fpc, scenario, unweighted)
    except Exception as exc:  # a failed study is recorded (and counted in the summary), not fatal
        return {"seed": int(seed), "scenario": scenario, "persons": int(persons), "replicates": int(replicates), "error": f"{type(exc).__name__}: {exc}"}


# --------------------------------------------------------------------------- many studies


def read_records(path: Path) -> list[dict[str, Any]]:
    """The per-study records in a JSONL results file (an unfinished last line is ignored)."""
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def run_studies(
    seeds: Sequence[int],
    persons: int,
    replicates: int,
    results: Path,
    *,
    workers: int = 2,
    progress: bool = True,
    tmp_root: str | None = None,
    no_fpc: bool = False,
    fpc: bool = False,
    scenario: str = "baseline",
    unweighted: bool = True,
) -> list[dict[str, Any]]:
    """Run the studies not yet in ``results`` (JSONL, appended one line per finished study).

    Parameters
    ----------
    seeds
        Seeds of the studies to have.
    persons, replicates
        Settings of each study (see :func:`run_study`).
    results
        The JSONL file; studies whose seed is already in it (with the same settings) are skipped.
    workers
        Processes running studies in parallel (replicates are serial inside a study).
    progress
        Show a progress bar.
    tmp_root
        Folder for the temporary study files.
    no_fpc, fpc
        Finite-population correction of the main SE, and the no-correction diagnostic (see
        :func:`run_study`).
    scenario
        The synthetic world (:data:`SCENARIOS`).
    unweighted
        Estimate the unweighted-but-matched comparison too (see :func:`run_study`).

    Returns
    -------
    list of dict
        Every record in ``results`` for ``seeds`` after the run.
    """
    results.parent.mkdir(parents=True, exist_ok=True)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(v, "1")  # inherited by the worker processes (BLAS threads would oversubscribe)
    done = {(r["seed"], r.get("persons"), r.get("replicates")) for r in read_records(results) if "error" not in r and r.get("scenario", "baseline") == scenario}
    todo = [s for s in seeds if (s, persons, replicates) not in done]
    jobs = [(int(s), persons, replicates, tmp_root, no_fpc, fpc, scenario, unweighted) for s in todo]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), desc="studies", unit="study", smoothing=0.1)
    with results.open("a", encoding="utf-8") as fh:

        def write(rec: dict[str, Any]) -> None:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
            fh.flush()
            if bar is not None:
                bar.update(1)
                if "error" in rec:
                    bar.write(f"seed {rec['seed']} failed: {rec['error']}")

        if workers <= 1:
            for j in jobs:
                write(_worker(j))
        elif jobs:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
                futs = [ex.submit(_worker, j) for j in jobs]
                for f in as_completed(futs):
                    write(f.result())
    if bar is not None:
        bar.close()
    wanted = set(int(s) for s in seeds)
    return [
        r for r in read_records(results)
        if r["seed"] in wanted and r.get("persons") == persons and r.get("replicates") == replicates and r.get("scenario", "baseline") == scenario
    ]


# --------------------------------------------------------------------------- summary


def summarise_methods(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per method, outcome and scale: bias, RMSE, coverage of the replicate-SE interval, MC SEs.

    Also the matching estimator under MatchIt's tie rule (``matching_matchit_ties``, no SE): the
    comparison of empirical SDs shows what using all tied controls does to the variance.
    """
    good = [r for r in records if "error" not in r and "methods" in next(iter(r["outcomes"].values()))["likert"]]
    rows: list[dict[str, Any]] = []
    if not good:
        return pd.DataFrame()
    for o in good[0]["outcomes"]:
        for scale in SCALES:
            cells = [r["outcomes"][o][scale] for r in good]
            current = [r.get("rules", {}).get("extrapolated") == RULES["extrapolated"] for r in good]
            names = [*list(cells[0]["methods"]), "matching_matchit_ties"]
            for meth in names:
                if meth == "matching_matchit_ties":
                    est = np.array([c["matching_matchit_ties"] for c in cells], dtype=float)
                    se = np.full(est.size, np.nan)
                else:
                    est = np.array([c["methods"][meth]["estimate"] for c in cells], dtype=float)
                    se = np.array([c["methods"][meth]["bse"] for c in cells], dtype=float)
                xs = [c["methods"][meth].get("extrapolated") if cur else None for c, cur in zip(cells, current, strict=True)] if meth != "matching_matchit_ties" else []
                xs_f = np.array([np.nan if x is None else x for x in xs], dtype=float)
                truth = np.array([c["truth"] for c in cells], dtype=float)
                ok = np.isfinite(est) & np.isfinite(truth)
                err = est[ok] - truth[ok]
                n = int(ok.sum())
                if n < 2:
                    continue
                bias, bias_se = _mc(err)
                has_se = np.isfinite(se[ok])
                cov = float((np.abs(err[has_se]) <= Z95 * se[ok][has_se]).mean()) if has_se.any() else float("nan")
                nc = int(has_se.sum())
                rows.append({
                    "method": meth, "outcome": o, "scale": scale, "studies": n,
                    "bias": bias, "bias_mc_se": bias_se, "rmse": float(np.sqrt(np.mean(err**2))),
                    "rmse_mc_se": float(np.std(err**2, ddof=1) / math.sqrt(n) / (2 * math.sqrt(np.mean(err**2)))) if np.mean(err**2) > 0 else float("nan"),
                    "empirical_sd": float(np.std(err, ddof=1)),
                    "mean_bse": float(np.nanmean(se[ok])) if has_se.any() else float("nan"),
                    "coverage": cov, "coverage_mc_se": math.sqrt(cov * (1 - cov) / nc) if nc else float("nan"),
                    # model-based methods: mean weighted share of POP users whose prediction extrapolates
                    "mean_extrapolated": float(np.nanmean(xs_f)) if np.isfinite(xs_f).any() else float("nan"),
                })
    return pd.DataFrame(rows)


def _mc(x: np.ndarray) -> tuple[float, float]:
    """Mean and its Monte-Carlo standard error."""
    n = len(x)
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")


def summarise(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per outcome and scale: truth, estimate, bias (+ MC SE), RMSE, SDs, coverage (+ MC SE), naive bias.

    Parameters
    ----------
    records
        Per-study records from :func:`run_study`; failed studies (with ``error``) are skipped.

    Returns
    -------
    pd.DataFrame
        One row per (outcome, scale).
    """
    good = [r for r in records if "error" not in r]
    rows: list[dict[str, Any]] = []
    if not good:
        return pd.DataFrame()
    for o in good[0]["outcomes"]:
        for scale in SCALES:
            d = pd.DataFrame([r["outcomes"][o][scale] for r in good])
            d = d[np.isfinite(d["estimate"]) & np.isfinite(d["bse"]) & np.isfinite(d["truth"])]
            n = len(d)
            err = (d["estimate"] - d["truth"]).to_numpy()
            bias, bias_se = _mc(err)
            cover = (np.abs(err) <= Z95 * d["bse"].to_numpy()).astype(float)
            cov = float(cover.mean())
            cov_model = float((np.abs(err) <= Z95 * d["model_bse"].to_numpy()).mean())
            nb, nb_se = _mc((d["naive"] - d["truth"]).to_numpy())
            ub, ub_se = _mc((d["unweighted_matched"] - d["truth"]).to_numpy())
            extra: dict[str, float] = {}
            if "bse_nofpc" in d.columns and d["bse_nofpc"].notna().all():
                c2 = float((np.abs(err) <= Z95 * d["bse_nofpc"].to_numpy()).mean())
                extra = {
                    "mean_bse_nofpc": float(d["bse_nofpc"].mean()),
                    "coverage_nofpc": c2,
                    "coverage_nofpc_mc_se": math.sqrt(c2 * (1 - c2) / n) if n else float("nan"),
                }
            conf = [r["outcomes"][o]["population_naive_difference"] - r["outcomes"][o]["likert"]["truth"] for r in good]
            emp_sd = float(np.std(err, ddof=1))
            mean_se = float(d["bse"].mean())
            rows.append(
                {
                    "outcome": o,
                    "scale": scale,
                    "studies": n,
                    "mean_truth": float(d["truth"].mean()),
                    "mean_estimate": float(d["estimate"].mean()),
                    "bias": bias,
                    "bias_mc_se": bias_se,
                    "rmse": float(np.sqrt(np.mean(err**2))),
                    "mean_abs_error": float(np.mean(np.abs(err))),
                    "empirical_sd": emp_sd,
                    "mean_bse": mean_se,
                    "se_ratio": mean_se / emp_sd if emp_sd > 0 else float("nan"),
                    "mean_model_bse": float(d["model_bse"].mean()),
                    "coverage": cov,
                    "coverage_mc_se": math.sqrt(cov * (1 - cov) / n) if n else float("nan"),
                    "coverage_model_bse": cov_model,
                    "naive_bias": nb,
                    "naive_bias_mc_se": nb_se,
                    "unweighted_matched_bias": ub,
                    "unweighted_matched_bias_mc_se": ub_se,
                    # confounding in the population itself: naive population difference - ATT
                    "population_confounding": float(np.mean(conf)) if scale == "likert" else float("nan"),
                    **extra,
                }
            )
    return pd.DataFrame(rows)


def criteria(summary: pd.DataFrame, n_studies: int) -> dict[str, Any]:
    """The issue's acceptance criteria evaluated on a summary (Likert scale)."""
    out: dict[str, Any] = {"studies": n_studies, "studies_at_least_200": n_studies >= 200, "outcomes": {}}
    if summary.empty:
        out["all_met"] = False
        return out
    lik = summary[summary["scale"] == "likert"].set_index("outcome")
    for o, r in lik.iterrows():
        out["outcomes"][o] = {
            "bias_within_tolerance": bool(abs(r["bias"]) <= BIAS_TOLERANCE_LIKERT),
            "coverage_in_range": bool(COVERAGE_RANGE[0] <= r["coverage"] <= COVERAGE_RANGE[1]),
            "naive_biased": bool(abs(r["naive_bias"]) > 2 * r["naive_bias_mc_se"]),
        }
    out["all_met"] = bool(
        out["studies_at_least_200"] and all(v["bias_within_tolerance"] and v["coverage_in_range"] for v in out["outcomes"].values())
    )
    return out


def _fmt(x: float, nd: int = 3, sign: bool = False) -> str:
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def write_report(records: list[dict[str, Any]], summary: pd.DataFrame, out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Write ``<out>.md`` and ``<out>.json`` from the records and their summary; returns the JSON."""
    good = [r for r in records if "error" not in r]
    failed = [r for r in records if "error" in r]
    crit = criteria(summary, len(good))
    secs = pd.DataFrame([r["seconds"] for r in good]) if good else pd.DataFrame()
    cost = {k: round(float(v), 2) for k, v in secs.mean().items()} if len(secs) else {}
    sizes = pd.DataFrame([{k: r[k] for k in ("population_size", "population_pop", "respondents", "respondents_pop", "matched_treated", "matched_control")} for r in good])
    size_means = {k: round(float(v), 1) for k, v in sizes.mean().items()} if len(sizes) else {}
    payload = {
        "settings": settings,
        "studies": len(good),
        "failed_studies": [{"seed": r["seed"], "error": r["error"]} for r in failed],
        "replicates_failed_total": int(sum(r["replicates"] - r["replicates_ok"] for r in good)),
        "mean_seconds_per_study": cost,
        "mean_sizes": size_means,
        "tolerances": {"abs_bias_likert": BIAS_TOLERANCE_LIKERT, "coverage": list(COVERAGE_RANGE)},
        "criteria": crit,
        "summary": json.loads(summary.to_json(orient="records", double_precision=10)),
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    lines = [
        "# Known truth: bias and coverage of the main estimator",
        "",
        f"{len(good)} synthetic studies (seeds {settings['seed0']} to {settings['seed0'] + settings['studies'] - 1}), "
        f"{settings['persons']:,} persons each, {settings['replicates']} end-to-end replicates per study"
        + (f"; {len(failed)} studies failed" if failed else "")
        + ".",
        "",
        "## What is simulated",
        "",
        "Each study is one independent draw of the synthetic data-generating process (`analysis.synth.generate`): "
        "a new admin universe, POP uptake that depends on education, age band, sector, sex and company size, a "
        "survey sample stratified by POP status (POP users oversampled), response that depends on the same "
        "characteristics and on POP status, and four 5-point Likert outcomes that depend on the same confounders "
        "plus a known POP effect ('weet niet' answers, incomplete responses, duplicates and unlinkable records "
        "included).  Each study runs the real pipeline: ingest and link in DuckDB, parse the LimeSurvey snapshot, "
        "build the analysis frame, then the main estimator as `popeval run` does (rake to POP x {educ, age band, "
        "sex, sector, company size}, survey-weighted propensity score, 1:1 nearest-neighbour matching with "
        "replacement, caliper 0.2 SD, matched WLS with covariate adjustment) with its end-to-end replicate SE "
        "(Rao-Wu rescaling bootstrap within POP strata"
        + (" with finite-population correction" if settings.get("fpc") else ", without finite-population correction as `popeval run` by default")
        + "; each replicate re-raked, re-fitted and re-matched) and the 95 % normal interval.",
        "",
        "**Estimand**: the finite-population ATT among POP users of each synthetic population, "
        "mean(Y1 - Y0 | POP), from the generator's `truth/truth.json` (never read by the pipeline).  The truth "
        "differs between studies; bias is the mean over studies of estimate - truth.",
        "",
        f"**Tolerances** (issue criteria, Likert scale): |bias| <= {BIAS_TOLERANCE_LIKERT} Likert points and "
        f"coverage of the 95 % interval in [{COVERAGE_RANGE[0]:.0%}, {COVERAGE_RANGE[1]:.0%}].  Monte-Carlo "
        "standard errors (MC SE) are given for bias and coverage.  *Naive* is the unweighted difference of "
        "respondent means (no weighting, no matching); *unweighted matched* fits the propensity score and "
        "matches on unweighted respondents.  *Population naive - ATT* is the confounding in the synthetic "
        "population itself (difference of population means of POP and non-POP users minus the ATT).",
        "",
        "## Results (Likert points; top-2-box as risk difference)",
        "",
        "| outcome | scale | studies | mean truth | mean estimate | bias (MC SE) | RMSE | emp. SD | mean rep. SE | coverage (MC SE) | naive bias (MC SE) | unweighted matched bias | population naive - ATT |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples() if not summary.empty else ():
        lines.append(
            f"| {r.outcome} | {r.scale} | {r.studies} | {_fmt(r.mean_truth)} | {_fmt(r.mean_estimate)} | "
            f"{_fmt(r.bias, 4, True)} ({_fmt(r.bias_mc_se, 4)}) | {_fmt(r.rmse, 4)} | {_fmt(r.empirical_sd, 4)} | "
            f"{_fmt(r.mean_bse, 4)} | {r.coverage:.1%} ({r.coverage_mc_se:.1%}) | "
            f"{_fmt(r.naive_bias, 3, True)} ({_fmt(r.naive_bias_mc_se, 3)}) | {_fmt(r.unweighted_matched_bias, 3, True)} | "
            f"{_fmt(r.population_confounding, 3, True) if np.isfinite(r.population_confounding) else ''} |"
        )
    lines += [
        "",
        "## Standard errors: replicate SE and the model-based (HC3) SE of the matched WLS",
        "",
        "| outcome | scale | emp. SD of estimate - truth | mean replicate SE | replicate SE / emp. SD | coverage (replicate SE) | mean model SE | coverage (model SE) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.itertuples():
        lines.append(
            f"| {r.outcome} | {r.scale} | {_fmt(r.empirical_sd, 4)} | {_fmt(r.mean_bse, 4)} | {_fmt(r.se_ratio, 2)} | "
            f"{r.coverage:.1%} | {_fmt(r.mean_model_bse, 4)} | {r.coverage_model_bse:.1%} |"
        )
    if "coverage_nofpc" in summary.columns:
        lines += [
            "",
            "## Replicate SE without the finite-population correction (same bootstrap draws)",
            "",
            "| outcome | scale | emp. SD | mean rep. SE (fpc) | coverage (fpc) | mean rep. SE (no fpc) | coverage (no fpc) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in summary.itertuples():
            lines.append(
                f"| {r.outcome} | {r.scale} | {_fmt(r.empirical_sd, 4)} | {_fmt(r.mean_bse, 4)} | "
                f"{r.coverage:.1%} ({r.coverage_mc_se:.1%}) | {_fmt(r.mean_bse_nofpc, 4)} | "
                f"{r.coverage_nofpc:.1%} ({r.coverage_nofpc_mc_se:.1%}) |"
            )
    lines += ["", "## Criteria (Likert scale)", ""]
    lines.append(f"- at least 200 studies: {'yes' if crit['studies_at_least_200'] else 'no'} ({crit['studies']})")
    for o, c in crit["outcomes"].items():
        lines.append(
            f"- {o}: |bias| <= {BIAS_TOLERANCE_LIKERT}: {'yes' if c['bias_within_tolerance'] else 'NO'}; "
            f"coverage in range: {'yes' if c['coverage_in_range'] else 'NO'}; naive biased (> 2 MC SE): "
            f"{'yes' if c['naive_biased'] else 'no'}"
        )
    lines.append(f"- all bias and coverage criteria met: {'yes' if crit['all_met'] else 'NO'}")
    if settings.get("notes"):
        lines += ["", "## Notes", "", *settings["notes"]]
    lines += [
        "",
        "## Cost and sizes",
        "",
        "Mean seconds per study: " + ", ".join(f"{k} {v}" for k, v in cost.items()) + ".",
        "Mean sizes per study: " + ", ".join(f"{k} {v:,.0f}" for k, v in size_means.items()) + ".",
        f"Replicates that could not be estimated (all studies): {payload['replicates_failed_total']}.",
        "",
        f"Reproduce (per-study records in `{Path(settings.get('out', 'known_truth')).name}.jsonl`; the run resumes where it stopped):",
        "",
        "```",
        f"OMP_NUM_THREADS=1 uv run --frozen python bench/known_truth.py --studies {settings['studies']} "
        f"--persons {settings['persons']} --replicates {settings['replicates']} --workers {settings['workers']} "
        f"--seed0 {settings['seed0']}" + (" --fpc" if settings.get("fpc") else "") + (" --no-fpc-too" if settings.get("no_fpc_too") else "") + f" --out {settings.get('out', 'bench/results/known_truth')}",
        "```",
        "",
        f"Python {settings.get('python', '')}, numpy {settings.get('numpy', '')}, pandas {settings.get('pandas', '')}.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    return payload


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed0", type=int, default=1000)
    ap.add_argument("--out", default="bench/results/known_truth", help="output stem: <out>.jsonl, <out>.md, <out>.json")
    ap.add_argument("--tmp", default=None, help="folder for the temporary study files")
    ap.add_argument("--summarise-only", action="store_true", help="only rewrite the summary from the JSONL")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--fpc", action="store_true", help="finite-population correction in the main replicate SE (off, as in popeval run)")
    ap.add_argument("--no-fpc-too", action="store_true", help="with --fpc: also record the replicate SE without the correction")
    ap.add_argument("--note", action="append", default=[], help="a line for the report's notes section")
    ap.add_argument("--scenarios", default=None, help="comma-separated scenarios (or 'all'): run the scenario matrix into <out>/<scenario>.jsonl and write <out>.md/.json")
    a = ap.parse_args(argv)
    if a.scenarios:
        names = list(SCENARIOS) if a.scenarios == "all" else a.scenarios.split(",")
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            ap.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
        return run_matrix(names, a)
    out = Path(a.out)
    results = out.with_suffix(".jsonl")
    seeds = list(range(a.seed0, a.seed0 + a.studies))
    if a.summarise_only:
        wanted = set(seeds)
        records = [r for r in read_records(results) if r["seed"] in wanted and r.get("persons") == a.persons and r.get("replicates") == a.replicates]
    else:
        records = run_studies(seeds, a.persons, a.replicates, results, workers=a.workers, progress=not a.no_progress, tmp_root=a.tmp, no_fpc=a.no_fpc_too, fpc=a.fpc)
    # keep one record per seed (a successful one if any)
    by_seed: dict[int, dict[str, Any]] = {}
    for r in records:
        if r["seed"] not in by_seed or "error" in by_seed[r["seed"]]:
            by_seed[r["seed"]] = r
    records = [by_seed[s] for s in sorted(by_seed)]
    summary = summarise(records)
    settings = {
        "studies": a.studies,
        "persons": a.persons,
        "replicates": a.replicates,
        "workers": a.workers,
        "seed0": a.seed0,
        "out": Path(a.out).as_posix(),
        "no_fpc_too": bool(a.no_fpc_too),
        "fpc": bool(a.fpc),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "notes": list(a.note),
    }
    payload = write_report(records, summary, out, settings)
    print(summary.to_string(index=False))
    print(json.dumps(payload["criteria"], indent=2))
    return 0


def matrix_criteria(table: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and method (Likert scale, over the outcomes): the issue's criteria.

    ``max_abs_bias`` and the coverage range over the four outcomes, whether every outcome's
    |bias| is within :data:`BIAS_TOLERANCE_LIKERT` and its coverage within
    :data:`COVERAGE_RANGE`, the mean RMSE and the mean ratio of the replicate SE to the empirical SD.
    """
    lik = table[(table["scale"] == "likert") & table["coverage"].notna()]
    rows = []
    for (sc, meth), g in lik.groupby(["scenario", "method"], sort=False):
        rows.append({
            "scenario": sc, "method": meth, "studies": int(g["studies"].min()),
            "max_abs_bias": float(g["bias"].abs().max()), "min_coverage": float(g["coverage"].min()),
            "max_coverage": float(g["coverage"].max()), "mean_rmse": float(g["rmse"].mean()),
            "se_ratio": float((g["mean_bse"] / g["empirical_sd"]).mean()),
            "bias_ok": bool((g["bias"].abs() <= BIAS_TOLERANCE_LIKERT).all()),
            "coverage_ok": bool(g["coverage"].between(*COVERAGE_RANGE).all()),
        })
    return pd.DataFrame(rows)


def _criteria_lines(table: pd.DataFrame) -> list[str]:
    crit = matrix_criteria(table)
    lines = [
        f"## Criteria per scenario and method (Likert scale, over the four outcomes): |bias| <= {BIAS_TOLERANCE_LIKERT}, "
        f"coverage in [{COVERAGE_RANGE[0]:.0%}, {COVERAGE_RANGE[1]:.0%}]",
        "",
        "| scenario | method | studies | max abs. bias | coverage (min-max) | mean RMSE | rep. SE / emp. SD | bias ok | coverage ok |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in crit.itertuples():
        lines.append(
            f"| {r.scenario} | {r.method} | {r.studies} | {r.max_abs_bias:.4f} | {r.min_coverage:.1%}-{r.max_coverage:.1%} | "
            f"{r.mean_rmse:.4f} | {r.se_ratio:.2f} | {'yes' if r.bias_ok else 'no'} | {'yes' if r.coverage_ok else 'no'} |"
        )
    return [*lines, "", "## Every method, outcome and scale", ""]


def run_matrix(names: Sequence[str], a: argparse.Namespace) -> int:
    """Run the known-truth study over several scenarios and write the matrix summary."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(a.seed0, a.seed0 + a.studies))
    tables = []
    for name in names:
        path = out / f"{name}.jsonl"
        if a.summarise_only:
            recs = [r for r in read_records(path) if r.get("persons") == a.persons and r.get("replicates") == a.replicates]
        else:
            recs = run_studies(seeds, a.persons, a.replicates, path, workers=a.workers, progress=not a.no_progress, tmp_root=a.tmp, scenario=name, unweighted=False)
        summ = summarise_methods(recs)
        if not summ.empty:
            summ.insert(0, "scenario", name)
            extra = {
                "excluded_share": float(np.mean([r["estimand"]["share_treated_excluded_weighted"] for r in recs if "error" not in r])),
                "respondents": float(np.mean([r["respondents"] for r in recs if "error" not in r])),
                "failed": len({r["seed"] for r in recs if "error" in r} - {r["seed"] for r in recs if "error" not in r}),
            }
            evs = [r["outcomes"][o].get("e_value_top2") for r in recs if "error" not in r for o in r["outcomes"]]
            extra["mean_e_value_top2"] = float(np.nanmean([e for e in evs if e is not None])) if any(e is not None for e in evs) else float("nan")
            for k, v in extra.items():
                summ[k] = v
            tables.append(summ)
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    settings = {
        "scenarios": list(names), "studies": a.studies, "persons": a.persons, "replicates": a.replicates,
        "seed0": a.seed0, "workers": a.workers, "python": platform.python_version(), "numpy": np.__version__,
        "pandas": pd.__version__, "notes": list(a.note),
    }
    payload = {"settings": settings, "scenario_params": {n: SCENARIOS[n] for n in names},
               "tolerances": {"abs_bias_likert": BIAS_TOLERANCE_LIKERT, "coverage": list(COVERAGE_RANGE)},
               "criteria": json.loads(matrix_criteria(table).to_json(orient="records", double_precision=10)) if len(table) else [],
               "summary": json.loads(table.to_json(orient="records", double_precision=10)) if len(table) else []}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    lines = [
        "# Known truth over a matrix of scenarios: every published estimator",
        "",
        f"Settings: up to {a.studies} studies per scenario (seeds {a.seed0}-{a.seed0 + a.studies - 1}; the studies actually "
        f"run are in the column `studies`), {a.persons:,} persons "
        f"(small_wave: x {SCENARIOS['small_wave'].get('persons_factor', 1)}), {a.replicates} end-to-end replicates per study.  "
        "The truth is the estimand's: the ATT among POP users with comparable controls (the excluded covariate cells "
        "removed from the synthetic population's POP users).  Coverage: the 95 % interval with the replicate SE.  "
        "MC SE: Monte-Carlo standard error.  `matching_matchit_ties` is the main estimator with MatchIt's tie rule "
        "(one tied control, by row order): compare its empirical SD with `matching`'s.",
        "",
        "`extrapolated`: mean over studies of the weighted share of POP users whose predicted outcome without a POP lies "
        "outside common support (regression, AIPW, ordered logit; `effects.extrapolated` of a run).",
        "",
    ]
    recs_all = [r for name in names for r in read_records(out / f"{name}.jsonl") if "error" not in r]
    old = sum(r.get("rules") != RULES for r in recs_all)
    if old:
        lines += [
            f"{old} of the {len(recs_all)} studies were run before the current rules of the two secondary columns: there "
            "`matching_matchit_ties` takes the left one of two equally near controls (MatchIt's rule before 4.7) and "
            "`extrapolated` is left out.  Every other estimate is computed by the same rules.",
            "",
        ]
    lines += [
        "The records were written by successive versions of the code (a study's record is not rewritten when the code "
        "changes): their point estimates agree to rounding, but the propensity model of a quasi-separated replicate "
        "(which has no maximum) is fitted by the logit's stopping rule, which changed once, so a replicate SE can "
        "differ slightly between records of different versions.",
        "",
    ]
    if len(table):
        lines += _criteria_lines(table)
    lines += [
        "| scenario | method | outcome | scale | studies | bias (MC SE) | RMSE | emp. SD | mean rep. SE | coverage (MC SE) | extrapolated |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples() if len(table) else ():
        cov = "" if not np.isfinite(r.coverage) else f"{r.coverage:.1%} ({r.coverage_mc_se:.1%})"
        xs = getattr(r, "mean_extrapolated", float("nan"))
        lines.append(
            f"| {r.scenario} | {r.method} | {r.outcome} | {r.scale} | {r.studies} | {r.bias:+.4f} ({r.bias_mc_se:.4f}) | "
            f"{r.rmse:.4f} | {r.empirical_sd:.4f} | {'' if not np.isfinite(r.mean_bse) else f'{r.mean_bse:.4f}'} | {cov} | "
            f"{'' if not np.isfinite(xs) else f'{xs:.1%}'} |"
        )
    if len(table):
        lines += ["", "## Per scenario", "", "| scenario | respondents | POP users excluded (weighted) | mean E-value (top-2-box RR) | failed studies |", "|---|---:|---:|---:|---:|"]
        for name, g in table.groupby("scenario", sort=False):
            r0 = g.iloc[0]
            lines.append(f"| {name} | {r0.respondents:,.0f} | {r0.excluded_share:.1%} | {r0.mean_e_value_top2:.2f} | {int(r0.failed)} |")
    if a.note:
        lines += ["", "## Notes", "", *a.note]
    lines += ["", "Reproduce:", "", "```",
              f"OMP_NUM_THREADS=1 uv run --frozen python bench/known_truth.py --scenarios {','.join(names)} --studies {a.studies} "
              f"--persons {a.persons} --replicates {a.replicates} --workers {a.workers} --seed0 {a.seed0} --out {a.out}", "```", ""]
    out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")
    if len(table):
        print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
