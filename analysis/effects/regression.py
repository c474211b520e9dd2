"""Outcome regression on the matched sample, with cluster-robust or HC3 standard errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from analysis.effects.results import EffectEstimate
from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from analysis.matching.nearest import MatchResult

__all__ = [
    "absorbed_effect",
    "adjust_pvalues",
    "matched_effect",
    "weighted_ols",
    "wls_params",
]


def wls_params(y: np.ndarray, X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares coefficients (minimum-norm when ``X`` is rank-deficient).

    The one WLS fit of the package: :func:`weighted_ols`, the outcome models of
    :mod:`analysis.effects.weighting_estimators` and the end-to-end replicates use it.
    Rows with weight 0 do not count.

    The normal equations, scaled to a unit diagonal and solved; where they are not well
    conditioned (condition number above :data:`STACKED_CONDITION`, e.g. collinear columns)
    least squares on the weighted rows (``numpy.linalg.lstsq``, minimum-norm).  Stacked weights
    ``w`` of shape ``(R, n)`` (with ``y`` of shape ``(n,)`` or ``(R, n)``) fit ``R`` regressions
    on the same ``X`` at once and return ``(R, p)``: the same solves for all rows together, on
    the rows of ``X`` merged where they are identical (:func:`_wls`).
    """
    w = np.asarray(w, dtype=float)
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    if w.ndim == 2:
        return _wls(np.broadcast_to(y, w.shape), X, w, merge=w.shape[0] > 1)
    return _wls(y[None, :], X, w[None, :], merge=False)[0]


#: Largest condition number of scaled normal equations solved as such in :func:`wls_params`
#: (their rounding error is about this times the machine epsilon relative to the
#: coefficients); less well-conditioned fits go through least squares.
STACKED_CONDITION = 1e6


def _wls(y: np.ndarray, X_all: np.ndarray, w: np.ndarray, *, merge: bool) -> np.ndarray:
    """:func:`wls_params` of every row of ``w`` and ``y`` (R, n): the minimum-norm coefficients.

    ``merge``: the rows of ``X`` merged where they are identical (summed weights, weighted mean
    outcome), and a collinearity of the rows with positive weight in any fit, which is one of
    every fit, taken out: the fits run on one basis of the columns
    (:func:`analysis.matching.propensity.identified_columns`) and their coefficients are
    projected onto the orthogonal complement of that common null space, which is the
    minimum-norm solution.  A row with a column of its own left out (0 on its rows) that the
    common null space involves, or badly conditioned, is fitted by least squares.
    """
    from analysis.matching.propensity import Gram, identified_columns, merged_rows, scaled_solve

    R, p_all = w.shape[0], X_all.shape[1]
    X, wm = X_all, w
    wy = w * np.where(w > 0, y, 0.0)  # weighted outcomes (the normal equations' right-hand side)
    basis = np.arange(p_all)
    null, used_all, used = None, None, None
    if merge:
        # rows with the same regressors merged: summed weights and summed weighted outcomes
        first, _, to_groups = merged_rows(X_all)
        X = X_all[first]
        wm = np.asarray((to_groups @ w.T).T)
        wy = np.asarray((to_groups @ wy.T).T)
        anyrow = (wm > 0).any(axis=0)
        Xu = X[anyrow]
        if anyrow.any():
            basis = identified_columns(Xu)
        if basis.size < p_all:
            # (p_all, q): the common null space (Vt's rows beyond the rank; all of Vt's rows only
            # where Xu has fewer rows than columns)
            null = np.linalg.svd(Xu, full_matrices=Xu.shape[0] < p_all)[2][basis.size :].T
        used_all = ((wm > 0).astype(float) @ (X != 0).astype(float)) > 0
        used = used_all[:, basis]
        X = X[:, basis]
    sol, bad = scaled_solve(Gram(X)(wm), wy @ X, used, STACKED_CONDITION)
    out = np.zeros((R, p_all))
    out[:, basis] = sol
    if null is not None and used_all is not None:
        out -= (out @ null) @ null.T
        bad |= ((~used_all).astype(float) @ (np.abs(null) > 1e-12).astype(float) > 0).any(axis=1)
    for r in np.flatnonzero(bad):  # least squares on the row's own weighted units
        sw = np.sqrt(w[r])
        out[r] = np.linalg.lstsq(X_all * sw[:, None], np.where(w[r] > 0, y[r], 0.0) * sw, rcond=None)[0]
    return np.asarray(out)


def weighted_ols(
    y: np.ndarray,
    X: np.ndarray,
    w: np.ndarray,
    *,
    vcov: Literal["cluster", "HC3", "HC1", "HC0"] = "HC1",
    cluster: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares with sandwich covariance, as R's ``lm`` + ``sandwich``.

    Parameters
    ----------
    y, X, w
        Outcome, design matrix (with intercept) and positive weights.
    vcov
        ``"cluster"``: ``sandwich::vcovCL(fit, cluster=, type="HC1")``, i.e. with the factor
        G/(G-1) * (n-1)/(n-k); ``"HC3"``/``"HC1"``/``"HC0"``: ``sandwich::vcovHC`` types.
    cluster
        Cluster labels for ``"cluster"``.

    Returns
    -------
    params, cov
    """
    n, k = X.shape
    sw = np.sqrt(w)
    Xw = X * sw[:, None]
    bread = np.linalg.inv(Xw.T @ Xw)
    params = wls_params(y, X, w)
    resid = y - X @ params
    scores = X * (w * resid)[:, None]
    if vcov == "cluster":
        if cluster is None:
            raise ConfigError("Cluster-robust SEs need cluster labels", param="cluster")
        _, g = np.unique(cluster, return_inverse=True)
        G = int(g.max()) + 1
        S = np.zeros((G, k))
        np.add.at(S, g, scores)
        meat = S.T @ S * (G / (G - 1)) * ((n - 1) / (n - k))
    elif vcov in ("HC0", "HC1", "HC3"):
        if vcov == "HC3":
            h = np.einsum("ij,jk,ik->i", Xw, bread, Xw)
            # a unit with leverage 1 (alone in a covariate category) has a zero residual: its
            # score is 0 (0/0 without this guard)
            lev1 = h >= 1 - 1e-10
            scores = np.where(lev1[:, None], 0.0, scores / np.where(lev1, 1.0, 1 - h)[:, None])
        meat = scores.T @ scores
        if vcov == "HC1":
            meat *= n / (n - k)
    else:
        raise ConfigError("Unknown covariance type", param="vcov",
                          expected="'cluster', 'HC3', 'HC1' or 'HC0'", found=repr(vcov))
    return params, bread @ meat @ bread


def _design(
    df: pd.DataFrame, outcome: str, treat: str, covariates: str | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    import patsy

    from analysis.matching.formula import design_matrix

    rhs = treat if not covariates else f"{treat} + {covariates.split('~')[-1]}"
    try:
        if outcome not in df.columns:
            raise patsy.PatsyError(f"no column {outcome!r}")
        y = df[outcome].to_numpy(dtype=float)
        if not np.isfinite(y).all():
            raise patsy.PatsyError("missing values in the outcome")
        x, names = design_matrix(df, rhs)
    except (patsy.PatsyError, ValueError, TypeError, KeyError) as exc:
        raise DataValidationError(
            "The outcome model could not be built", column=outcome, found=rhs,
            hint="check column names and missing values", detail=str(exc),
        ) from exc
    return y, x, names


def matched_effect(
    m: MatchResult,
    df: pd.DataFrame,
    outcome: str,
    covariates: str | None = None,
    *,
    vcov: Literal["auto", "cluster", "HC3", "HC1"] = "auto",
    top_box: float | None = None,
) -> EffectEstimate:
    """ATT by weighted regression on the matched sample.

    Fits ``outcome ~ treat + covariates`` by WLS with the combined (survey x matching) weights on
    the matched units, as ``lm(y ~ treat + covs, data = match.data(m), weights = weights)``.

    Parameters
    ----------
    m
        The matching.
    df
        The matched data (same index).
    outcome
        Outcome column.  A Likert item is used as an interval score (mean difference), or, with
        ``top_box``, as the indicator ``outcome >= top_box`` (risk difference by a linear
        probability model; e.g. ``top_box=4`` for top-2-box on a 1-5 scale).
    covariates
        Right-hand side for covariate adjustment (default: the matching covariates); ``""`` for
        none.
    vcov
        ``"auto"``: cluster-robust by subclass (pair) after matching without replacement, HC3
        with replacement.  Cluster-robust is ``sandwich::vcovCL(fit, cluster=~subclass)`` (HC1).

    Returns
    -------
    EffectEstimate
    """
    from analysis.matching.formula import split_formula

    md = m.matched_data(df)
    name = outcome
    if top_box is not None:
        md = md.assign(**{f"{outcome}_top": (md[outcome] >= top_box).astype(float)})
        name = f"{outcome}_top"
    if covariates is None:
        covariates = split_formula(m.formula)[1]
    y, X, cols = _design(md, name, m.treat_column, covariates or None)
    w = md["combined_weights"].to_numpy(dtype=float)
    replace = bool(m.settings.get("replace", False))
    if vcov == "auto":
        vcov = "HC3" if replace else "cluster"
    cluster = None
    if vcov == "cluster":
        if md["subclass"].isna().any():
            raise ConfigError(
                "Cluster-robust SEs need subclasses (matching without replacement)",
                param="vcov", hint="use vcov='HC3' after matching with replacement",
            )
        cluster = md["subclass"].to_numpy(dtype=np.int64)
    params, cov = weighted_ols(y, X, w, vcov=vcov, cluster=cluster)
    import pandas as pd

    var = np.diag(cov)
    # a negative variance comes from a rank-deficient fit (a category alone in one arm): no SE
    bse = np.sqrt(np.where(var >= 0, var, np.nan))

    term = m.treat_column
    return EffectEstimate(
        outcome=name,
        estimand="ATT",
        method="matched WLS" + (" (risk difference)" if top_box is not None else ""),
        params=pd.Series(params, index=cols),
        bse=pd.Series(bse, index=cols),
        term=term,
        nobs=len(y),
        vcov_type="cluster-robust by subclass (HC1)" if vcov == "cluster" else vcov,
        df_resid=float(len(y) - X.shape[1]),
    )


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Holm and Benjamini-Hochberg adjusted p-values.

    Holm's step-down ``max_{j <= i} (m - j + 1) p_(j)`` and the Benjamini-Hochberg step-up
    ``min_{j >= i} m p_(j) / j`` over the sorted p-values, capped at 1 (as statsmodels'
    ``multipletests`` with ``"holm"`` and ``"fdr_bh"``, which the tests compare them with; loading
    statsmodels' multiple-testing module for them cost about a second of every run).
    """
    p = np.asarray(pvalues, dtype=float)
    m = p.size
    order = np.argsort(p)
    ps = p[order]
    holm = np.minimum(np.maximum.accumulate((m - np.arange(m)) * ps), 1.0)
    bh = np.minimum(np.minimum.accumulate((ps * m / np.arange(1, m + 1))[::-1])[::-1], 1.0)
    out_holm, out_bh = np.empty(m), np.empty(m)
    out_holm[order], out_bh[order] = holm, bh
    return out_holm, out_bh


def absorbed_effect(
    df: pd.DataFrame,
    outcome: str,
    treat: str,
    covariates: Sequence[str],
    absorb: Sequence[str],
    *,
    weights: str | None = None,
    cluster: str | None = None,
) -> EffectEstimate:
    """Regression adjustment with absorbed fixed effects (robustness check), by linearmodels.

    Fits ``outcome ~ treat + covariates`` with the categories of ``absorb`` (e.g. training domain,
    loopbaancentrum) absorbed by :class:`linearmodels.iv.absorbing.AbsorbingLS`, weighted, with
    cluster-robust (``cluster`` column) or heteroskedasticity-robust standard errors.

    Returns
    -------
    EffectEstimate
    """
    import pandas as pd
    from linearmodels.iv.absorbing import AbsorbingLS

    cols = [outcome, treat, *covariates, *absorb] + [c for c in (weights, cluster) if c]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataValidationError("Columns are missing", column=missing[0], param="absorbed_effect")
    data = df[cols].dropna()
    exog = data[[treat, *covariates]].astype(float)
    fe = pd.DataFrame({a: data[a].astype("category") for a in absorb})
    mod = AbsorbingLS(
        data[outcome].astype(float), exog, absorb=fe,
        weights=None if weights is None else data[weights].astype(float),
    )
    if cluster is not None:
        res = mod.fit(cov_type="clustered", clusters=data[cluster].astype("category").cat.codes)
    else:
        res = mod.fit(cov_type="robust")
    return EffectEstimate(
        outcome=outcome,
        estimand="ATE (regression adjustment)",
        method="AbsorbingLS with absorbed " + ", ".join(absorb),
        params=res.params.copy(),
        bse=res.std_errors.copy(),
        term=treat,
        nobs=int(res.nobs),
        vcov_type="clustered" if cluster is not None else "robust",
        df_resid=None,
    )
