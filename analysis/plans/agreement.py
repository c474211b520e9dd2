"""Inter-coder agreement per code, the disagreement list and the reconciled code set.

Statistics (nominal codes, every unit coded by every coder):

* **percent agreement**: the share of agreeing coder pairs, averaged over units (for two coders the
  share of units with the same code);
* **Cohen's kappa** (two coders): ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` from the two coders'
  own marginal distributions; with more coders the mean over coder pairs;
* **Krippendorff's alpha** (nominal): ``1 - D_o / D_e`` from the coincidence matrix.

Intervals are percentile intervals of a nonparametric bootstrap over POPs (units), all statistics
from the same resamples.  The statistics are computed from per-unit category counts, so a bootstrap
resample is a matrix product; the tests check them against scikit-learn, statsmodels and the
``krippendorff`` package.

Reconciliation rule
-------------------
Where all coders agree, that value is final.  Where they disagree, the value in the reconciliation
sheet (``definitief``) is final.  With three or more coders and no reconciliation sheet, a strict
majority decides; a disagreement without a strict majority must be reconciled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.plans.codebook import CODEBOOK, Codebook
from survey.errors import DataValidationError

__all__ = ["AgreementResult", "agreement", "cohen_kappa", "disagreements", "krippendorff_alpha", "percent_agreement", "reconcile"]


def _counts(ratings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(units, coders)`` labels -> per-unit category counts ``(units, K)`` and codes ``(units, coders)``."""
    flat = pd.factorize(ratings.ravel(), sort=True)[0].reshape(ratings.shape)
    K = int(flat.max()) + 1
    counts = np.zeros((ratings.shape[0], K))
    for j in range(ratings.shape[1]):
        counts[np.arange(ratings.shape[0]), flat[:, j]] += 1
    return counts, flat


def _stats(ratings: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    """Percent agreement, (mean pairwise) Cohen's kappa and Krippendorff's alpha for unit weights ``W``
    (``(B, units)``: one row per bootstrap resample; a row of ones is the sample itself)."""
    counts, codes = _counts(ratings)
    m = ratings.shape[1]
    K = counts.shape[1]
    tot = W.sum(axis=1)
    # percent agreement: agreeing ordered pairs / all ordered pairs, per unit
    pa_u = (counts * (counts - 1)).sum(axis=1) / (m * (m - 1))
    pa = W @ pa_u / tot
    # Krippendorff's alpha, nominal
    do_u = (m * m - (counts**2).sum(axis=1)) / (m - 1)  # sum of off-diagonal coincidences of the unit
    n_tot = tot * m
    n_c = W @ counts  # (B, K)
    D_o = (W @ do_u) / n_tot
    D_e = (n_tot**2 - (n_c**2).sum(axis=1)) / (n_tot * (n_tot - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(D_e > 0, 1 - D_o / D_e, np.nan)
    # Cohen's kappa per coder pair, averaged
    kappas = []
    onehot = np.eye(K)[codes]  # (U, m, K)
    for a in range(m):
        for b in range(a + 1, m):
            agree = (codes[:, a] == codes[:, b]).astype(float)
            po = W @ agree / tot
            pa_m = (W @ onehot[:, a, :]) / tot[:, None]
            pb_m = (W @ onehot[:, b, :]) / tot[:, None]
            pe = (pa_m * pb_m).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                kappas.append(np.where(pe < 1, (po - pe) / (1 - pe), np.nan))
    kappa = np.mean(kappas, axis=0)
    return {"percent_agreement": pa, "kappa": kappa, "alpha": alpha}


def percent_agreement(ratings: np.ndarray) -> float:
    """Percent agreement (0-1) of a ``(units, coders)`` array of labels."""
    r = np.asarray(ratings, dtype=object)
    return float(_stats(r, np.ones((1, r.shape[0])))["percent_agreement"][0])


def cohen_kappa(ratings: np.ndarray) -> float:
    """Cohen's kappa (two coders; mean over pairs with more)."""
    r = np.asarray(ratings, dtype=object)
    return float(_stats(r, np.ones((1, r.shape[0])))["kappa"][0])


def krippendorff_alpha(ratings: np.ndarray) -> float:
    """Krippendorff's alpha for nominal data, every unit coded by every coder."""
    r = np.asarray(ratings, dtype=object)
    return float(_stats(r, np.ones((1, r.shape[0])))["alpha"][0])


@dataclass(frozen=True)
class AgreementResult:
    """Agreement per code with bootstrap intervals (immutable)."""

    table: pd.DataFrame
    n_boot: int
    alpha_level: float

    def to_frame(self) -> pd.DataFrame:
        """One row per code."""
        return self.table.copy()

    def summary(self) -> str:
        """Printable table."""
        cols = ["code", "n_units", "n_coders", "percent_agreement", "kappa", "alpha"]
        return f"Inter-coder agreement ({self.n_boot} bootstrap resamples)\n" + self.table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _wide(coded: pd.DataFrame, code: str) -> tuple[np.ndarray, list[str], list[str]]:
    w = coded.pivot(index="pop_id", columns="coder", values=code).sort_index()
    return w.to_numpy(dtype=object), list(w.index), list(w.columns)


def agreement(coded: pd.DataFrame, *, codebook: Codebook = CODEBOOK, n_boot: int = 1000, alpha: float = 0.05, seed: int = 2023) -> AgreementResult:
    """Agreement per code from the long coded frame of :func:`analysis.plans.sheets.read_sheets`."""
    rows = []
    for c in codebook.codes:
        R, ids, coders = _wide(coded, c.name)
        U = len(ids)
        point = _stats(R, np.ones((1, U)))
        rng = np.random.default_rng([seed, 7])
        W = rng.multinomial(U, np.full(U, 1 / U), size=n_boot).astype(float) if n_boot else np.ones((0, U))
        boot = _stats(R, W) if n_boot else {k: np.array([np.nan]) for k in point}
        rec: dict[str, object] = {"code": c.name, "n_units": U, "n_coders": len(coders)}
        for k in ("percent_agreement", "kappa", "alpha"):
            rec[k] = float(point[k][0])
            b = boot[k][np.isfinite(boot[k])]
            rec[f"{k}_lower"] = float(np.quantile(b, alpha / 2)) if len(b) else np.nan
            rec[f"{k}_upper"] = float(np.quantile(b, 1 - alpha / 2)) if len(b) else np.nan
        rows.append(rec)
    return AgreementResult(table=pd.DataFrame(rows), n_boot=n_boot, alpha_level=alpha)


def disagreements(coded: pd.DataFrame, *, codebook: Codebook = CODEBOOK) -> pd.DataFrame:
    """One row per POP and code on which the coders disagree: ``pop_id``, ``code``, ``coder_<name>``..."""
    coders = sorted(coded["coder"].unique())
    out = []
    for c in codebook.codes:
        w = coded.pivot(index="pop_id", columns="coder", values=c.name).sort_index()
        dis = w.nunique(axis=1) > 1
        d = w[dis].reset_index()
        d.insert(1, "code", c.name)
        d.columns = ["pop_id", "code", *[f"coder_{k}" for k in w.columns]]
        out.append(d)
    cols = ["pop_id", "code", *[f"coder_{k}" for k in coders]]
    return pd.concat(out, ignore_index=True)[cols].sort_values(["pop_id", "code"], kind="stable").reset_index(drop=True)


def reconcile(coded: pd.DataFrame, reconciled: pd.DataFrame | None = None, *, codebook: Codebook = CODEBOOK) -> pd.DataFrame:
    """The reconciled code set: one row per POP (``pop_id`` + codes), by the module's rule.

    Raises
    ------
    DataValidationError
        When a disagreement is left without a reconciled value (and no strict majority with three or
        more coders), or the reconciled codes of a POP contradict the codebook's rules.
    """
    fixes: dict[tuple[str, str], str] = {} if reconciled is None else {(str(r.pop_id), str(r.code)): str(r.value) for r in reconciled.itertuples(index=False)}
    m = coded["coder"].nunique()
    final: dict[str, pd.Series] = {}
    open_: list[tuple[str, str]] = []
    for c in codebook.codes:
        w = coded.pivot(index="pop_id", columns="coder", values=c.name).sort_index()
        vals = []
        for pid, row in zip(w.index, w.to_numpy(dtype=object), strict=True):
            vc = Counter(v for v in row if not pd.isna(v))  # the coders' values and their counts
            top, n_top = vc.most_common(1)[0] if vc else (None, 0)
            if len(vc) == 1:
                vals.append(top)
            elif (str(pid), c.name) in fixes:
                vals.append(fixes[(str(pid), c.name)])
            elif m >= 3 and n_top * 2 > m:  # a strict majority: the most common value is unique
                vals.append(top)
            else:
                vals.append(None)
                open_.append((str(pid), c.name))
        final[c.name] = pd.Series(vals, index=w.index)
    if open_:
        raise DataValidationError(
            "Disagreements between coders are not reconciled",
            expected="a reconciled value for every disagreement",
            found=f"{len(open_)} open disagreement(s), e.g. {open_[0][0]} / {open_[0][1]}",
            hint="fill 'definitief' in the reconciliation sheet (plans/sheets/reconciliation.xlsx) and run `popeval plans ingest` again",
        )
    out = pd.DataFrame(final).reset_index().rename(columns={"index": "pop_id"})
    for rec in out.to_dict("records"):
        bad = codebook.check_consistency({str(k): str(v) for k, v in rec.items()})
        if bad:
            raise DataValidationError(
                "The reconciled codes of a POP contradict the codebook", column="definitief", found=f"{rec['pop_id']}: {bad}", hint="correct the reconciliation sheet"
            )
    return out

