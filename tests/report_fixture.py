"""A small demo results bundle for the report tests, computed honestly from a synthetic study.

:func:`make_demo_bundle` generates a small synthetic study (:func:`analysis.synth.generate`) and
computes every bundle table it can from the study's *files* (never from ``truth/``) with plain pandas:

* ``pop_share``, ``profile``, ``training_domains`` from the DWSE extract (and the VDAB extract for
  loopbaancheque users);
* ``linkage`` and ``response_flow`` from the LimeSurvey snapshot and the participants table;
* ``weighting_margins`` and ``weight_diagnostics`` from a plain raking of the analysed respondents to
  the population margins (education, age band, sex, company size, POP status);
* ``balance`` before and after an exact matching on the coarse covariates (ATT weights);
* ``effects``: difference in means (unweighted, survey-weighted, exact-matched) with a linearised
  standard error, normal CIs and Holm/BH adjustment over the four outcomes per method and scale;
* ``category_shifts``: matched differences in category shares (a simple stand-in until the ordered
  model of the pipeline lands; its columns are the same);
* ``sensitivity``: E-values for the standardised Likert differences (VanderWeele & Ding); the
  Rosenbaum Gamma needs matched pairs and is left missing.

This is test scaffolding; the pipeline (``popeval run``) writes the real bundle.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEMO_CONFIG", "make_demo_bundle"]

#: The configuration recorded in the demo bundle's manifest.
DEMO_CONFIG: dict[str, Any] = {
    "study": "demo",
    "persons": 20_000,
    "seed": 11,
    "weighting": {"method": "raking", "margins": ["educ", "age_band", "sex", "company_size", "pop"]},
    "matching": {"method": "exact", "covariates": ["educ", "age_band", "sex", "sector"], "estimand": "ATT"},
    "disclosure": {"threshold": 5},
    "confidence_level": 0.95,
}

_MARGINS = ("educ", "age_band", "sex", "company_size", "pop")
_COVARIATES = ("educ", "age_band", "sex", "sector", "company_size")
_EXACT = ("educ", "age_band", "sex", "sector")


def _age_band(age: pd.Series) -> pd.Series:
    from survey.datamodel import age_band

    return age.map(lambda a: age_band(int(a)))


def _persons(dwse: pd.DataFrame) -> pd.DataFrame:
    """One row per person with an approved application: characteristics of the latest one."""
    ok = dwse[dwse["status"] == "goedgekeurd"].copy()
    ok["age_band"] = _age_band(ok["school_year"].str[:4].astype(int) - ok["birth_year"])
    return ok


def _profile(apps: pd.DataFrame) -> pd.DataFrame:
    rows = []
    last = apps.sort_values("application_date").drop_duplicates("person_key", keep="last")
    pop_keys = set(apps.loc[apps["pop_based"] == 1, "person_key"])
    for group, frame in (("pop", last[last["person_key"].isin(pop_keys)]), ("all", last)):
        for var in ("sex", "educ", "age_band", "sector", "company_size"):
            counts = frame[var].value_counts()
            for cat, n in counts.items():
                rows.append({"variable": var, "category": cat, "group": group, "n": int(n), "pct": 100.0 * n / len(frame)})
    return pd.DataFrame(rows)


def _rake(df: pd.DataFrame, targets: dict[str, pd.Series], max_iter: int = 200, tol: float = 1e-10) -> tuple[np.ndarray, int, bool]:
    w = np.ones(len(df)) * sum(targets[next(iter(targets))]) / len(df)
    for it in range(1, max_iter + 1):
        worst = 0.0
        for var, target in targets.items():
            cur = pd.Series(w).groupby(df[var].to_numpy()).sum()
            ratio = (target / cur).reindex(df[var]).to_numpy()
            worst = max(worst, float(np.max(np.abs(cur / target.reindex(cur.index) - 1.0))))
            w = w * ratio
        if worst < tol:
            return w, it, True
    return w, max_iter, False


def _wmean_se(y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted mean and its linearised standard error (with-replacement approximation)."""
    sw = w.sum()
    m = float((w * y).sum() / sw)
    n = len(y)
    z = w * (y - m) / sw
    se = math.sqrt(n / (n - 1) * float((z**2).sum())) if n > 1 else math.nan
    return m, se


def _smd(x: np.ndarray, d: np.ndarray, w: np.ndarray) -> float:
    """Standardised mean difference, denominator: SD of the treated (ATT convention)."""
    m1 = np.average(x[d], weights=w[d])
    m0 = np.average(x[~d], weights=w[~d])
    sd = float(np.std(x[d], ddof=1))
    return float((m1 - m0) / sd) if sd > 0 else 0.0


def _vr(x: np.ndarray, d: np.ndarray, w: np.ndarray) -> float:
    def wvar(v: np.ndarray, ww: np.ndarray) -> float:
        m = np.average(v, weights=ww)
        return float(np.average((v - m) ** 2, weights=ww))

    v0 = wvar(x[~d], w[~d])
    return wvar(x[d], w[d]) / v0 if v0 > 0 else math.nan


def make_demo_bundle(out: str | Path, *, persons: int = 20_000, seed: int = 11, work: str | Path | None = None) -> Path:
    """Generate a synthetic study and write its results bundle to ``out``.

    Parameters
    ----------
    out
        The bundle folder.
    persons, seed
        Size and seed of the synthetic study.
    work
        Where the synthetic study's files go (default: ``<out>_study``).

    Returns
    -------
    Path
        The bundle folder.
    """
    import hashlib
    import importlib.metadata as md

    from statsmodels.stats.multitest import multipletests

    from analysis.bundle import write_bundle
    from analysis.synth import DEMO_SNAPSHOT, DEMO_SURVEY_ID, generate
    from survey.parse import read_participants, read_responses
    from survey.questionnaire import OUTCOMES

    out = Path(out)
    work = Path(work) if work is not None else out.with_name(out.name + "_study")
    summary = generate(persons=persons, seed=seed, out=work)
    dwse = pd.read_csv(work / "admin" / "dwse_applications.csv", dtype={"school_year": str})
    vdab = pd.read_csv(work / "admin" / "vdab_trajectories.csv")
    snap = work / "survey" / str(DEMO_SURVEY_ID) / DEMO_SNAPSHOT
    resp = read_responses(snap / "responses.csv")
    parts = read_participants(snap)

    apps = _persons(dwse)
    tables: dict[str, pd.DataFrame] = {}

    # ------------------------------------------------------------ population
    rows = []
    for inc in ("OC", "VOV", "VAPOK"):
        a = apps[apps["incentive"] == inc]
        rows.append({"incentive": inc, "n_approved": len(a), "n_pop": int(a["pop_based"].sum()), "pct_pop": 100.0 * a["pop_based"].mean()})
    lbc = set(vdab["person_key"])
    pop_persons = set(apps.loc[apps["pop_based"] == 1, "person_key"])
    n_lbc_pop = len(lbc & pop_persons)
    rows.append({"incentive": "LBC", "n_approved": len(lbc), "n_pop": n_lbc_pop, "pct_pop": 100.0 * n_lbc_pop / len(lbc)})
    tables["pop_share"] = pd.DataFrame(rows)
    tables["profile"] = _profile(apps)
    popapps = apps[apps["pop_based"] == 1]
    td = popapps.groupby(["in_databank", "training_domain"]).size().rename("n").reset_index()
    td["pct"] = 100.0 * td["n"] / td.groupby("in_databank")["n"].transform("sum")
    td = td.rename(columns={"training_domain": "domain"}).assign(group="pop")
    tables["training_domains"] = td.sort_values(["in_databank", "n"], ascending=[False, False])[["group", "in_databank", "domain", "n", "pct"]]

    # ------------------------------------------------------------ the survey
    oc = apps[apps["incentive"] == "OC"].sort_values("application_date")
    oc_pop = set(oc.loc[oc["pop_based"] == 1, "person_key"])
    frame = oc.drop_duplicates("person_key", keep="last").set_index("person_key")
    frame["pop"] = frame.index.isin(oc_pop)
    tok2key = dict(zip(parts["token"], parts["attribute_1"], strict=True))
    resp = resp.assign(person_key=resp["token"].map(tok2key))
    complete = resp[resp["submitdate"].notna()]
    dup = complete.duplicated("token", keep="first")
    first = complete[~dup]
    linked = first[first["person_key"].isin(frame.index)]
    outcome_cols = [o.column for o in OUTCOMES]
    y = linked[outcome_cols].apply(pd.to_numeric, errors="coerce").where(lambda v: (v >= 1) & (v <= 5))
    analysed = linked[y.notna().any(axis=1).to_numpy()]
    tables["linkage"] = pd.DataFrame(
        [
            {"source": "participants", "status": "linked", "n": int(parts["attribute_1"].isin(frame.index).sum())},
            {"source": "participants", "status": "unlinked", "n": int((~parts["attribute_1"].isin(frame.index)).sum())},
            {"source": "responses", "status": "linked", "n": int(resp["person_key"].notna().sum())},
            {"source": "responses", "status": "unlinked", "n": int(resp["person_key"].isna().sum())},
            {"source": "responses", "status": "duplicate", "n": int(dup.sum())},
        ]
    )
    tables["response_flow"] = pd.DataFrame(
        {
            "step": ["invited", "started", "completed", "linked", "analysed"],
            "n": [len(parts), int(resp.loc[resp["person_key"].notna(), "token"].nunique()), len(first), len(linked), len(analysed)],
        }
    )

    # ------------------------------------------------------------ weighting (raking)
    r = frame.loc[analysed["person_key"]].reset_index()
    ys = analysed[outcome_cols].apply(pd.to_numeric, errors="coerce").where(lambda v: (v >= 1) & (v <= 5)).reset_index(drop=True)
    targets = {m: frame[m].value_counts() for m in _MARGINS}
    w, iters, conv = _rake(r, targets)
    rows = []
    for m in _MARGINS:
        for cat, npop in targets[m].items():
            mask = (r[m] == cat).to_numpy()
            rows.append(
                {
                    "variable": m,
                    "category": str(cat).lower() if m == "pop" else cat,
                    "population": int(npop),
                    "n_respondents": int(mask.sum()),
                    "pct_population": 100.0 * npop / len(frame),
                    "pct_unweighted": 100.0 * mask.mean(),
                    "pct_weighted": 100.0 * w[mask].sum() / w.sum(),
                }
            )
    tables["weighting_margins"] = pd.DataFrame(rows)
    deff = len(w) * float((w**2).sum()) / float(w.sum()) ** 2
    tables["weight_diagnostics"] = pd.DataFrame(
        {
            "statistic": ["n", "min", "p05", "median", "p95", "max", "ratio_max_min", "kish_deff", "n_effective", "iterations", "converged"],
            "value": [
                len(w),
                w.min(),
                np.quantile(w, 0.05),
                np.median(w),
                np.quantile(w, 0.95),
                w.max(),
                w.max() / w.min(),
                deff,
                len(w) / deff,
                iters,
                float(conv),
            ],
        }
    )

    # ------------------------------------------------------------ matching (exact, ATT weights)
    d = r["pop"].to_numpy()
    stratum = r[list(_EXACT)].astype(str).agg("|".join, axis=1)
    nt = pd.Series(d).groupby(stratum.to_numpy()).transform("sum").to_numpy()
    nc = pd.Series(~d).groupby(stratum.to_numpy()).transform("sum").to_numpy()
    keep = (nt > 0) & (nc > 0)
    mw = np.where(d, 1.0, np.divide(nt, nc, out=np.zeros(len(d)), where=nc > 0)) * keep
    X = pd.get_dummies(r[list(_COVARIATES)].astype(str), prefix_sep="=").astype(float)
    bal = []
    pop_d = frame["pop"].to_numpy()
    Xp = pd.get_dummies(frame[list(_COVARIATES)].astype(str), prefix_sep="=").astype(float)
    for col in X.columns:
        x = X[col].to_numpy()
        for stage, ww, xd, dd in (("before", np.ones(len(d)), x, d), ("after", mw, x, d)):
            sel = ww > 0
            bal.append(
                {
                    "variable": col,
                    "stage": stage,
                    "smd": _smd(xd[sel], dd[sel], ww[sel]),
                    "variance_ratio": _vr(xd[sel], dd[sel], ww[sel]),
                    "ecdf_mean": abs(np.average(xd[sel & dd], weights=ww[sel & dd]) - np.average(xd[sel & ~dd], weights=ww[sel & ~dd])),
                    "ecdf_max": abs(np.average(xd[sel & dd], weights=ww[sel & dd]) - np.average(xd[sel & ~dd], weights=ww[sel & ~dd])),
                }
            )
        if col in Xp.columns:
            xp = Xp[col].to_numpy()
            bal.append({"variable": col, "stage": "population", "smd": _smd(xp, pop_d, np.ones(len(xp))), "variance_ratio": _vr(xp, pop_d, np.ones(len(xp))), "ecdf_mean": math.nan, "ecdf_max": math.nan})
    tables["balance"] = pd.DataFrame(bal)

    # ------------------------------------------------------------ effects
    eff = []
    for method, ww, estimand in (("unadjusted", np.ones(len(d)), "ATT"), ("weighted", w, "PATT"), ("matching", mw, "ATT")):
        for scale in ("likert", "top2"):
            for o in OUTCOMES:
                yv = ys[o.column].to_numpy()
                if scale == "top2":
                    yv = np.where(np.isnan(yv), np.nan, (yv >= 4).astype(float))
                ok = ~np.isnan(yv) & (ww > 0)
                m1, s1 = _wmean_se(yv[ok & d], ww[ok & d])
                m0, s0 = _wmean_se(yv[ok & ~d], ww[ok & ~d])
                est, se = m1 - m0, math.hypot(s1, s0)
                p = math.erfc(abs(est / se) / math.sqrt(2.0))
                eff.append(
                    {
                        "outcome": o.name,
                        "method": method,
                        "estimand": estimand,
                        "scale": scale,
                        "estimate": est,
                        "std_error": se,
                        "ci_lower": est - 1.959964 * se,
                        "ci_upper": est + 1.959964 * se,
                        "p_value": p,
                        "n_treated": int((ok & d).sum()),
                        "n_control": int((ok & ~d).sum()),
                        "sd_control": float(np.nanstd(yv[ok & ~d], ddof=1)),
                    }
                )
    effects = pd.DataFrame(eff)
    for (_m, _s), idx in effects.groupby(["method", "scale"]).groups.items():
        effects.loc[idx, "p_holm"] = multipletests(effects.loc[idx, "p_value"], method="holm")[1]
        effects.loc[idx, "p_bh"] = multipletests(effects.loc[idx, "p_value"], method="fdr_bh")[1]
    sens = []
    for _, e in effects[(effects["method"] == "matching") & (effects["scale"] == "likert")].iterrows():
        def evalue(dstd: float) -> float:
            rr = math.exp(0.91 * abs(dstd))
            return rr + math.sqrt(rr * (rr - 1.0))

        dstd = e["estimate"] / e["sd_control"]
        lo = e["ci_lower"] / e["sd_control"] if e["estimate"] > 0 else -e["ci_upper"] / e["sd_control"]
        sens.append({"outcome": e["outcome"], "e_value": evalue(dstd), "e_value_ci": evalue(lo) if lo > 0 else 1.0, "rosenbaum_gamma": math.nan})
    tables["sensitivity"] = pd.DataFrame(sens)
    tables["effects"] = effects.drop(columns="sd_control")

    # ------------------------------------------------------------ category shifts (matched shares)
    shifts = []
    for o in OUTCOMES:
        yv = ys[o.column].to_numpy()
        ok = ~np.isnan(yv) & (mw > 0)
        for cat in range(1, 6):
            ind = (yv == cat).astype(float)
            m1, s1 = _wmean_se(ind[ok & d], mw[ok & d])
            m0, s0 = _wmean_se(ind[ok & ~d], mw[ok & ~d])
            se = math.hypot(s1, s0)
            shifts.append({"outcome": o.name, "category": str(cat), "shift": m1 - m0, "std_error": se, "ci_lower": m1 - m0 - 1.959964 * se, "ci_upper": m1 - m0 + 1.959964 * se})
    tables["category_shifts"] = pd.DataFrame(shifts)

    # ------------------------------------------------------------ estimates and manifest
    estimates = {
        "population": {"oc_users": len(frame), "oc_pop_users": int(frame["pop"].sum()), "loopbaancheque_users": len(lbc)},
        "survey": {"invited": len(parts), "analysed": len(analysed), "response_rate": len(analysed) / len(parts)},
        "weighting": {"kish_deff": deff, "n_effective": len(w) / deff},
        "matching": {"treated_matched": int((d & keep).sum()), "controls_matched": int((~d & keep).sum()), "treated_unmatched": int((d & ~keep).sum())},
    }
    inputs = {k: v for k, v in summary.files.items() if not k.startswith("truth/")}
    versions = {}
    for pkg in ("numpy", "pandas", "statsmodels", "matplotlib", "popeval"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    manifest = {
        "popeval_version": versions.get("popeval"),
        "created_at": "2026-11-23T13:05:00Z",
        "commit": hashlib.sha1(b"demo").hexdigest(),
        "seed": seed,
        "inputs": inputs,
        "packages": versions,
        "config": {**DEMO_CONFIG, "persons": persons, "seed": seed},
        "note": "demo bundle computed by the test fixture from a synthetic study",
    }
    write_bundle(out, tables, estimates, manifest)
    return out


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(make_demo_bundle(sys.argv[1] if len(sys.argv) > 1 else "demo_bundle"))
