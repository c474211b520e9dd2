"""Known truth for the POP part: coverage of the design-based and combined estimates over repeated samples.

One synthetic study (:func:`analysis.synth.generate` + :func:`analysis.plans.synth.generate_plans`) is
the fixed finite population of POPs with their true codes.  The automated concordance
(:func:`analysis.plans.concordance.concordance`) flags every POP once, as ``popeval plans estimate``
does.  Then, for each of ``--reps`` repetitions, the script

1. draws a stratified sample with :func:`analysis.plans.sample.draw_sample` (strata incentive x
   centre size, equal allocation, so inclusion probabilities differ widely between strata);
2. takes the true codes of the sampled POPs as the reconciled human codes;
3. estimates every share with :func:`analysis.plans.estimates.design_estimates`, the mismatch share
   also with :func:`analysis.plans.estimates.combined_estimate` (automated flags on all POPs plus the
   sample) and the three career goals with the combined estimator on the cross-fitted text
   classifier's probabilities (:func:`analysis.plans.classify.goal_predictions`);
4. records whether each 95 % interval covers the population share.

The summary (truth, mean estimate, bias, empirical SD, mean SE, coverage and its Monte-Carlo SE, mean
interval width) goes to ``<out>.json`` and ``<out>.md``.

Run from the repository root::

    uv run --frozen python bench/plans_known_truth.py --reps 400 --persons 60000 --n 300 --out bench/results/plans_known_truth
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STRATA = ("incentive", "centre_size")


def build_population(persons: int, seed: int, folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The POP frame, its true codes, the automated flags of every POP and the masked texts."""
    from analysis.plans.concordance import concordance
    from analysis.plans.frame import build_frame, mask_personal, read_texts
    from analysis.plans.synth import generate_plans
    from analysis.synth import generate
    from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
    from survey.validate import read_table

    out = Path(folder)
    generate(persons=persons, seed=seed, out=out)
    generate_plans(out, seed=seed)
    texts = read_texts(out / "plans" / "pop_texts.parquet")
    traj = read_table(out / "admin" / "vdab_trajectories.csv", VDAB_TRAJECTORIES)
    dwse = read_table(out / "admin" / "dwse_applications.csv", DWSE_APPLICATIONS)
    frame, _ = build_frame(texts, traj, dwse, "attest")
    texts["text"] = texts["text"].map(mask_personal)
    auto = concordance(frame, texts, pd.read_csv(out / "plans" / "trainings.csv", dtype=str))
    truth = pd.read_parquet(out / "truth" / "plans_codes.parquet").rename(columns={"trajectory_id": "pop_id"})
    return frame, truth, auto, texts


def run(reps: int, persons: int, n: int, seed: int, tmp_root: str | None = None, goals: bool = True, progress: bool = False) -> dict[str, Any]:
    """Run the repeated-sampling study; returns the summary (see the module docstring).

    With ``goals`` the career goals are also estimated by the combined estimator with the cross-fitted
    text classifier (:func:`analysis.plans.classify.goal_predictions`).
    """
    from analysis.plans.classify import goal_predictions, text_features
    from analysis.plans.codebook import GOALS
    from analysis.plans.estimates import MEASURES, _indicators, combined_estimate, design_estimates
    from analysis.plans.sample import draw_sample, stratum_labels

    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        frame, truth, auto, texts = build_population(persons, seed, tmp)
    frame = frame.copy()
    frame["stratum"] = stratum_labels(frame, STRATA).to_numpy()
    pop = frame[["pop_id"]].merge(truth, on="pop_id")
    ind = _indicators(pop)
    true_share = {m: float(ind[m].mean()) for m in MEASURES}
    # the TF-IDF of every POP's text does not depend on the sample: computed once for all samples
    features = text_features(texts, frame["pop_id"]) if goals else None
    records = []
    for r in range(reps):
        s = draw_sample(frame, n, STRATA, allocation="equal", seed=seed * 1000 + r)
        codes = s.units.merge(truth, on="pop_id")
        parts = [design_estimates(codes, by_stratum=False), combined_estimate(codes, auto, frame[["pop_id", "stratum"]])]
        if goals:
            preds = goal_predictions(codes, texts, frame["pop_id"], seed=r, features=features)
            parts += [combined_estimate(codes, None, frame[["pop_id", "stratum"]], measure=g, predictions=preds[g]) for g in GOALS]
        est = pd.concat(parts, ignore_index=True)
        est = est[(est["stratum"] == "alle") & (est["estimator"] != "automated")]
        if progress and (r + 1) % 20 == 0:
            print(f"  {r + 1}/{reps} samples", file=sys.stderr, flush=True)
        for row in est.itertuples(index=False):
            t = true_share[row.measure]
            records.append(
                {
                    "rep": r,
                    "measure": row.measure,
                    "estimator": row.estimator,
                    "estimate": row.estimate,
                    "bse": row.bse,
                    "covered": bool(row.ci_lower <= t <= row.ci_upper),
                    "width": row.ci_upper - row.ci_lower,
                }
            )
    df = pd.DataFrame(records)
    rows = []
    for (m, e), g in df.groupby(["measure", "estimator"], sort=True):
        cov = float(g["covered"].mean())
        rows.append(
            {
                "measure": m,
                "estimator": e,
                "truth": true_share[m],
                "mean_estimate": float(g["estimate"].mean()),
                "bias": float(g["estimate"].mean() - true_share[m]),
                "bias_mcse": float(g["estimate"].std(ddof=1) / np.sqrt(len(g))),
                "empirical_sd": float(g["estimate"].std(ddof=1)),
                "mean_bse": float(g["bse"].mean()),
                "coverage": cov,
                "coverage_mcse": float(np.sqrt(cov * (1 - cov) / len(g))),
                "mean_width": float(g["width"].mean()),
                "reps": len(g),
            }
        )
    summary = pd.DataFrame(rows)
    w = summary.set_index(["measure", "estimator"])["mean_width"]
    ratios = {m: float(w[(m, "combined")] / w[(m, "design")]) for m in MEASURES if (m, "combined") in w.index}
    return {
        "width_ratio_combined_vs_design": ratios,
        "reps": reps,
        "persons": persons,
        "sample_size": n,
        "population_pops": len(frame),
        "strata": list(STRATA),
        "seed": seed,
        "width_ratio_mismatch_combined_vs_design": float(w[("mismatch", "combined")] / w[("mismatch", "design")]),
        "summary": summary.to_dict("records"),
    }


def main() -> None:  # pragma: no cover - command line
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--persons", type=int, default=60_000)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--out", default="bench/results/plans_known_truth")
    a = ap.parse_args()
    res = run(a.reps, a.persons, a.n, a.seed, progress=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    s = pd.DataFrame(res["summary"])
    md = [
        "# POP part: known-truth repeated sampling",
        "",
        f"{res['reps']} stratified samples of {res['sample_size']} POPs from one synthetic population of {res['population_pops']} POPs "
        f"(strata: {', '.join(res['strata'])}; equal allocation). Nominal coverage 95 %.",
        "",
        s.to_markdown(index=False, floatfmt=".4f"),  # pandas writes Markdown with tabulate (a dev dependency)
        "",
        "Mean interval width of the combined estimator relative to the sample-only one: "
        + "; ".join(f"{m} {v:.3f}" for m, v in res["width_ratio_combined_vs_design"].items())
        + ".",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":  # pragma: no cover
    main()
