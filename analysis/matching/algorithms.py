"""Nearest-neighbour matching kernels (used by matching and by the estimation module).

Ties.  With categorical covariates most matches are ties: many controls share a treated unit's
propensity score exactly (mathematically), but floating-point noise (BLAS kernel, summation order)
can make one of them 1 ulp nearer.  :func:`tie_canonical` therefore first merges values closer than
a tolerance into one, so that every later comparison treats them as equal, and the kernels accept a
``tiebreak`` key (e.g. the rank of the units' labels) that decides among tied units instead of the
row order.  :func:`nn_sorted_all` implements the rule of Abadie & Imbens (2006) and Stata's
``teffects nnmatch``: with replacement, every control tied with the ``ratio``-th nearest is used
and the treated unit's weight is shared among them.

Two kernels, mirroring MatchIt's two C++ routines:

* :func:`nn_sorted` matches on a scalar distance (a propensity score).  All units are sorted by
  (distance, row) and each treated unit, in the processing order, takes the closest *available*
  control to its left or right in that order; the left one wins a tie in absolute distance.  The
  "next available control" on each side is found with two path-compressed union-find arrays, so a
  match costs amortised near-constant time instead of a scan.  With replacement and one match per
  treated unit the search is fully vectorised with ``np.searchsorted``.
* :func:`nn_general` matches on a Mahalanobis distance (whitened covariates).  Among the eligible
  controls the smallest distance wins and ties go to the first control in data order
  (``which.min``).  With replacement and no calipers it uses :class:`scipy.spatial.cKDTree`.

Both return a match matrix: one row per treated unit (in data order of the treated units passed
in), ``ratio`` columns of *local* control indices, ``-1`` where there is no match.  With all ties
used the number of matches varies: :func:`nn_sorted_all` and ``nn_general(all_ties=True)`` return
a matrix padded with ``-1`` to the largest number of matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "combined_weights",
    "label_ranks",
    "mm_to_pairs",
    "nn_general",
    "nn_sorted",
    "nn_sorted_all",
    "subclass_from_mm",
    "tie_canonical",
    "weights_from_mm",
]


def _cov_ok(
    cal_mat: np.ndarray | None, cal_width: np.ndarray | None, a: int, b: int, int_abs: bool
) -> bool:
    if cal_mat is None or cal_width is None:
        return True
    diff = cal_mat[a] - cal_mat[b]
    if int_abs:
        diff = np.trunc(diff)
    return bool(np.all(np.abs(diff) <= cal_width))


def _int_abs(v: float) -> float:
    """C's ``abs(int)`` applied to a double, as MatchIt 4.5.1's ``nn_matchC_vec`` does."""
    return float(abs(int(v)))


def tie_canonical(values: np.ndarray, tol: float) -> np.ndarray:
    """Merge values closer than ``tol`` into one (the smallest of each run).

    The values are sorted and a new group starts wherever the gap to the previous value exceeds
    ``tol``; every value is replaced by its group's first (smallest) value.  Values that differ
    only by floating-point noise thus compare equal, whatever their order in the data.
    """
    v = np.asarray(values, dtype=float)
    if tol <= 0 or v.size < 2:
        return v.copy()
    order = np.argsort(v, kind="stable")
    sv = v[order]
    start = np.concatenate([[True], np.diff(sv) > tol])
    first = np.maximum.accumulate(np.where(start, np.arange(sv.size), 0))
    out = np.empty_like(v)
    out[order] = sv[first]
    return out


def label_ranks(labels: Any) -> np.ndarray:
    """Rank of every unit's label: a tie-break key that does not depend on the row order."""
    import pandas as pd

    idx = pd.Index(labels)
    try:
        codes = idx.argsort(kind="stable")
    except TypeError:  # mixed label types: compare their text
        codes = pd.Index(idx.astype(str)).argsort(kind="stable")
    ranks = np.empty(len(idx), dtype=np.int64)
    ranks[codes] = np.arange(len(idx))
    return ranks


def mm_to_pairs(mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, controls and weight shares (1 / number of matches of the row) of a match matrix."""
    n_match = (mm >= 0).sum(axis=1)
    rows, cols = np.nonzero(mm >= 0)
    return rows, mm[rows, cols], 1.0 / n_match[rows]


def nn_sorted(
    dist: np.ndarray,
    treat: np.ndarray,
    ord1: np.ndarray,
    ratio: int,
    replace: bool,
    caliper: float | None,
    cal_mat: np.ndarray | None = None,
    cal_width: np.ndarray | None = None,
    int_abs: bool = False,
    tiebreak: np.ndarray | None = None,
    tol: float = 0.0,
) -> np.ndarray:
    """Nearest-neighbour matching on a scalar distance (MatchIt's ``nn_matchC_vec``).

    Parameters
    ----------
    dist
        Distance (propensity score) of every unit.
    treat
        0/1 treatment of every unit.
    ord1
        Processing order, as indices into the treated units (0..n1-1, treated in data order).
    ratio
        Controls per treated unit.
    replace
        Whether controls may be reused.
    caliper
        Maximum absolute distance difference, or None.
    cal_mat, cal_width
        Covariates with a caliper of their own (one column each) and their widths.
    int_abs
        Reproduce MatchIt 4.5.1, whose C++ code calls the integer ``abs()`` on differences of
        doubles: every distance difference below 1 becomes 0, so the left neighbour (smaller
        score) always wins and propensity-score calipers never bind.
    tiebreak
        Secondary sort key among equal distances.  Default (None): MatchIt 4.7's rule.  Units are
        sorted by (distance, row), as R's ``order()`` does, and MatchIt's ``find_control_vec``
        walks outwards from the treated unit one sorted position at a time, left first, taking
        the first eligible control on each side; of two equally near controls it keeps the one
        found first, i.e. the one fewer sorted positions away (treated and used units count as
        positions), the left one at an equal number.  With a key, the left one of two equally
        near controls wins (and with ``int_abs``, MatchIt 4.5.1's rule: always the left one).
    tol
        Distance differences up to ``tol`` count as equal and a control within ``caliper + tol``
        is within the caliper.  Pass distances canonicalised with :func:`tie_canonical` for
        tie-consistent results.

    Returns
    -------
    numpy.ndarray
        ``(n1, ratio)`` local indices of the matched controls, -1 for none.
    """
    n = dist.size
    ind1 = np.flatnonzero(treat == 1)
    n1 = ind1.size
    mm = np.full((n1, ratio), -1, dtype=np.int64)
    if n1 == 0 or n1 == n:
        return mm
    order = (
        np.argsort(dist, kind="stable") if tiebreak is None else np.lexsort((tiebreak, dist))
    )
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    d_sorted = dist[order]
    ctrl_sorted = treat[order] == 0
    # MatchIt 4.7: of two equally near controls the one fewer sorted positions away
    steps = tiebreak is None and not int_abs

    if replace and cal_mat is None:
        return _nn_sorted_replace(
            d_sorted, ctrl_sorted, order, pos[ind1], ratio, caliper, mm, int_abs, tol, steps
        )
    if not replace and cal_mat is None and not int_abs:
        return _nn_sorted_greedy(
            d_sorted, ctrl_sorted, order, pos[ind1], ord1, ratio, caliper, mm, tol, steps
        )
    return _nn_sorted_general(
        d_sorted, ctrl_sorted, order, pos[ind1], ord1, ratio, replace, caliper,
        (cal_mat, cal_width), int_abs, tol, steps,
    )


def _find(parent: list[int], p: int) -> int:
    """The root of ``p`` in a union-find array, compressing the path to it."""
    root = p
    while parent[root] != root:
        root = parent[root]
    while parent[p] != root:
        nxt = parent[p]
        parent[p] = root
        p = nxt
    return root


def _nearer(kl: int, kr: int, p: int, gaps: tuple[float, float], steps: bool, tol: float) -> int:
    """Of the nearest eligible controls left (``kl``) and right (``kr``) of sorted position ``p``
    (-1: none) at distance ``gaps``, the one :func:`nn_sorted` matches (-1: none)."""
    if kl < 0 or kr < 0:
        return max(kl, kr)
    gl, gr = gaps
    if steps and abs(gl - gr) <= tol:
        return kl if p - kl <= kr - p else kr
    return kl if gl <= gr + tol else kr


def _nn_sorted_general(
    d_sorted: np.ndarray,
    ctrl_sorted: np.ndarray,
    order: np.ndarray,
    pos1: np.ndarray,
    ord1: np.ndarray,
    ratio: int,
    replace: bool,
    caliper: float | None,
    covariate_calipers: tuple[np.ndarray | None, np.ndarray | None],
    int_abs: bool,
    tol: float,
    steps: bool,
) -> np.ndarray:
    """The general loop of :func:`nn_sorted` (covariate calipers, MatchIt 4.5.1's ``abs``).

    Two path-compressed union-find arrays give the next available control to the right (``rp``)
    and to the left (``lp``, shifted by one); each treated unit takes the nearer of the first
    eligible control on each side.
    """
    n, n1 = d_sorted.size, pos1.size
    cal_mat, cal_width = covariate_calipers
    fabs = _int_abs if int_abs else abs
    rp = np.arange(n + 1)
    rp[:n][~ctrl_sorted] += 1
    lp = np.arange(n + 1)
    lp[1:][~ctrl_sorted] -= 1
    rp_l: list[int] = rp.tolist()
    lp_l: list[int] = lp.tolist()
    d_l: list[float] = d_sorted.tolist()
    order_l: list[int] = order.tolist()
    pos1_l: list[int] = pos1.tolist()
    ord_l: list[int] = [int(i) for i in ord1]
    cal = float("inf") if caliper is None else float(caliper) + tol
    use_cov = cal_mat is not None
    mm_l = [[-1] * ratio for _ in range(n1)]

    def usable(taken: list[int] | None, p: int, k: int) -> bool:
        return (taken is None or order_l[k] not in taken) and (
            not use_cov or _cov_ok(cal_mat, cal_width, order_l[p], order_l[k], int_abs)
        )

    for r in range(ratio):
        for t in ord_l:
            p = pos1_l[t]
            dt = d_l[p]
            taken = mm_l[t] if (r > 0 and replace) else None
            # left: shifted indices (position k is index k + 1; 0 means none)
            kl = -1
            q = _find(lp_l, p)
            while q > 0 and not fabs(d_l[q - 1] - dt) > cal:
                if usable(taken, p, q - 1):
                    kl = q - 1
                    break
                q = _find(lp_l, q - 1)
            # right
            kr = -1
            q = _find(rp_l, p + 1)
            while q < n and not fabs(d_l[q] - dt) > cal:
                if usable(taken, p, q):
                    kr = q
                    break
                q = _find(rp_l, q + 1)
            gaps = (fabs(d_l[kl] - dt) if kl >= 0 else 0.0, fabs(d_l[kr] - dt) if kr >= 0 else 0.0)
            k = _nearer(kl, kr, p, gaps, steps, tol)
            if k < 0:
                continue
            mm_l[t][r] = order_l[k]
            if not replace:
                rp_l[k] = k + 1
                lp_l[k + 1] = k
    return np.asarray(mm_l, dtype=np.int64).reshape(n1, ratio)


def _nn_sorted_greedy(
    d_sorted: np.ndarray,
    ctrl_sorted: np.ndarray,
    order: np.ndarray,
    pos1: np.ndarray,
    ord1: np.ndarray,
    ratio: int,
    caliper: float | None,
    mm: np.ndarray,
    tol: float = 0.0,
    steps: bool = False,
) -> np.ndarray:
    """Matching without replacement and without covariate calipers (the common case).

    The same greedy rule as the general loop of :func:`nn_sorted`, on the controls only: the
    union-find arrays run over the controls' ranks in the sorted order, and since the distance is
    sorted only the nearest available control on each side can be within the caliper.  Path
    halving keeps the finds near constant time.  ``steps``: MatchIt 4.7's tie rule (see
    :func:`nn_sorted`).
    """
    cpos = np.flatnonzero(ctrl_sorted)
    n0 = cpos.size
    cd: list[float] = d_sorted[cpos].tolist()
    cidx: list[int] = order[cpos].tolist()
    # first control rank to the right of each treated unit (n0: none); the left neighbour is
    # the rank before it.  rp[k] == k: control k is available (n0 is the "none" sentinel);
    # lp is shifted by one (lp[k + 1] is control k, lp[0] the sentinel).
    first_right: list[int] = np.searchsorted(cpos, pos1, side="right").tolist()
    d1: list[float] = d_sorted[pos1].tolist()
    pos1_l: list[int] = pos1.tolist()
    cpos_l: list[int] = cpos.tolist()
    rp = list(range(n0 + 1))
    lp = list(range(n0 + 1))
    cal = float("inf") if caliper is None else float(caliper) + tol
    n1 = pos1.size
    out = [-1] * (n1 * ratio)
    ord_l: list[int] = np.asarray(ord1, dtype=np.int64).tolist()
    for r in range(ratio):
        for t in ord_l:
            q0 = first_right[t]
            q = q0
            while lp[q] != q:
                lp[q] = lp[lp[q]]
                q = lp[q]
            s = q0
            while rp[s] != s:
                rp[s] = rp[rp[s]]
                s = rp[s]
            dt = d1[t]
            ok_l = q > 0 and (dl := dt - cd[q - 1]) <= cal
            ok_r = s < n0 and (dr := cd[s] - dt) <= cal
            if ok_l and ok_r and steps and abs(dl - dr) <= tol:
                k = q - 1 if pos1_l[t] - cpos_l[q - 1] <= cpos_l[s] - pos1_l[t] else s
            elif ok_l and (not ok_r or dl <= dr + tol):
                k = q - 1
            elif ok_r:
                k = s
            else:
                continue
            out[t * ratio + r] = cidx[k]
            rp[k] = k + 1
            lp[k + 1] = k
    mm[:] = np.asarray(out, dtype=np.int64).reshape(n1, ratio)
    return mm


def _nn_sorted_replace(
    d_sorted: np.ndarray,
    ctrl_sorted: np.ndarray,
    order: np.ndarray,
    pos1: np.ndarray,
    ratio: int,
    caliper: float | None,
    mm: np.ndarray,
    int_abs: bool,
    tol: float = 0.0,
    steps: bool = False,
) -> np.ndarray:
    """Vectorised matching with replacement: walk outwards from each treated unit.

    ``steps``: MatchIt 4.7's tie rule (see :func:`nn_sorted`): of two equally near controls the
    one fewer sorted positions from the treated unit, the left one at an equal number.
    """
    cpos = np.flatnonzero(ctrl_sorted)  # sorted positions of the controls
    cd = d_sorted[cpos]
    n0 = cpos.size
    dt = d_sorted[pos1]
    # left pointer: last control position below the treated one; right: first above
    right = np.searchsorted(cpos, pos1, side="right")
    left = right - 1
    alive = np.ones(pos1.size, dtype=bool)
    cal = np.inf if caliper is None else caliper + tol
    for r in range(min(ratio, n0)):
        has_l = left >= 0
        has_r = right < n0
        dl = cd[np.clip(left, 0, n0 - 1)] - dt
        dr = cd[np.clip(right, 0, n0 - 1)] - dt
        if int_abs:
            dl, dr = np.trunc(dl), np.trunc(dr)
        dl = np.where(has_l, np.abs(dl), np.inf)
        dr = np.where(has_r, np.abs(dr), np.inf)
        ok_l = has_l & (dl <= cal)
        ok_r = has_r & (dr <= cal)
        if steps:
            gap_l = pos1 - cpos[np.clip(left, 0, n0 - 1)]
            gap_r = cpos[np.clip(right, 0, n0 - 1)] - pos1
            tie = np.abs(dl - dr) <= tol
            take_l = ok_l & (~ok_r | np.where(tie, gap_l <= gap_r, dl < dr))
        else:
            take_l = ok_l & (~ok_r | (dl <= dr + tol))
        take_r = ok_r & ~take_l
        alive &= take_l | take_r
        chosen = np.where(take_l, left, right)
        mm[alive, r] = order[cpos[chosen[alive]]]
        left = np.where(take_l, left - 1, left)
        right = np.where(take_r, right + 1, right)
    return mm


def nn_sorted_all(
    dist: np.ndarray,
    treat: np.ndarray,
    ratio: int,
    caliper: float | None,
    tol: float = 0.0,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Matching with replacement on a scalar distance, all ties used (Abadie & Imbens 2006).

    Every treated unit is matched to its ``ratio`` nearest controls *and* to every control as
    near as the ``ratio``-th one (within ``tol``), on both sides of its score.  The result depends
    neither on the row order nor on the processing order.

    Parameters
    ----------
    dist
        Distance (propensity score) of every unit, ideally canonicalised with
        :func:`tie_canonical` using the same ``tol``.
    treat
        0/1 treatment of every unit.
    ratio
        Number of nearest controls (before ties are added).
    caliper
        Maximum absolute distance difference (``+ tol``), or None.
    tol
        Distances that differ by at most ``tol`` are ties.
    counts
        Number of identical units each entry stands for (compressed data: units with the same
        covariates share one distance and are exact ties); the ``ratio`` nearest are counted in
        units.  None: one each.

    Returns
    -------
    numpy.ndarray
        ``(n1, k)`` local control indices, rows in data order of the treated units, padded with
        -1; ``k`` is the largest number of matches of any treated unit.  Within a row the controls
        are sorted by distance, then by position.
    """
    ind1 = np.flatnonzero(treat == 1)
    ind0 = np.flatnonzero(treat == 0)
    n1 = ind1.size
    if n1 == 0 or ind0.size == 0:
        return np.full((n1, ratio), -1, dtype=np.int64)
    d0 = np.asarray(dist, dtype=float)[ind0]
    c_order = np.lexsort((ind0, d0))
    cd = d0[c_order]
    ctrl_sorted = ind0[c_order]
    # groups of equal (canonical) control distances
    start = np.concatenate([[True], np.diff(cd) > tol])
    g_start = np.flatnonzero(start)
    g_val = cd[g_start]
    g_end = np.append(g_start[1:], cd.size)
    if counts is None:
        g_count = g_end - g_start
    else:
        csum = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64)[ctrl_sorted])])
        g_count = csum[g_end] - csum[g_start]
    n_g = g_val.size
    dt = np.asarray(dist, dtype=float)[ind1]
    right = np.searchsorted(g_val, dt - tol, side="left")  # first group not clearly below
    left = right - 1
    cal = np.inf if caliper is None else float(caliper) + tol
    count = np.zeros(n1, dtype=np.int64)
    active = np.ones(n1, dtype=bool)
    taken_rows: list[np.ndarray] = []
    taken_groups: list[np.ndarray] = []
    while active.any():
        has_l = active & (left >= 0)
        has_r = active & (right < n_g)
        dl = np.where(has_l, np.abs(dt - g_val[np.clip(left, 0, n_g - 1)]), np.inf)
        dr = np.where(has_r, np.abs(g_val[np.clip(right, 0, n_g - 1)] - dt), np.inf)
        dmin = np.minimum(dl, dr)
        ok = active & (dmin <= cal)
        take_l = ok & has_l & (dl <= dmin + tol)
        take_r = ok & has_r & (dr <= dmin + tol)
        for take, ptr in ((take_l, left), (take_r, right)):
            rows = np.flatnonzero(take)
            taken_rows.append(rows)
            taken_groups.append(ptr[rows])
            count[rows] += g_count[ptr[rows]]
        left = np.where(take_l, left - 1, left)
        right = np.where(take_r, right + 1, right)
        active = ok & (count < ratio)
    rows = np.concatenate(taken_rows)
    groups = np.concatenate(taken_groups)
    sizes = g_end[groups] - g_start[groups]
    rows_x = np.repeat(rows, sizes)
    offs = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    cpos = np.repeat(g_start[groups], sizes) + offs
    ctrl = ctrl_sorted[cpos]
    dist_x = np.abs(cd[cpos] - dt[rows_x])
    o = np.lexsort((ctrl, dist_x, rows_x))
    rows_x, ctrl = rows_x[o], ctrl[o]
    n_match = np.bincount(rows_x, minlength=n1)
    k = max(int(n_match.max()), 1)
    mm = np.full((n1, k), -1, dtype=np.int64)
    col = np.arange(rows_x.size) - np.repeat(np.cumsum(n_match) - n_match, n_match)
    mm[rows_x, col] = ctrl
    return mm


def nn_general(
    z: np.ndarray,
    treat: np.ndarray,
    ord1: np.ndarray,
    ratio: int,
    replace: bool,
    ps: np.ndarray | None = None,
    caliper: float | None = None,
    cal_mat: np.ndarray | None = None,
    cal_width: np.ndarray | None = None,
    tiebreak: np.ndarray | None = None,
    tol: float = 0.0,
    all_ties: bool = False,
) -> np.ndarray:
    """Nearest-neighbour matching on whitened covariates (MatchIt's ``nn_matchC``).

    Parameters
    ----------
    z
        ``(n, p)`` whitened covariates: Euclidean distance on ``z`` is the Mahalanobis distance.
    treat, ord1, ratio, replace
        As for :func:`nn_sorted`.
    ps, caliper
        Propensity score and its caliper (absolute units), if any.
    cal_mat, cal_width
        Covariate calipers.
    tiebreak
        Key deciding among controls at the same distance (within ``tol``); default the row
        order (MatchIt's ``which.min``: the first control in data order).
    tol
        Distances that differ by at most ``tol`` are ties.
    all_ties
        With replacement: use every control as near as the ``ratio``-th nearest (within
        ``tol``); the result is then padded with -1 to the largest number of matches.

    Returns
    -------
    numpy.ndarray
        ``(n1, ratio)`` local indices of the matched controls, -1 for none.
    """
    ind1 = np.flatnonzero(treat == 1)
    ind0 = np.flatnonzero(treat == 0)
    n1, n0 = ind1.size, ind0.size
    mm = np.full((n1, ratio), -1, dtype=np.int64)
    if n1 == 0 or n0 == 0:
        return mm
    key0 = ind0 if tiebreak is None else np.asarray(tiebreak)[ind0]
    search = _Nearest(z, ind0, z[ind0], key0, tol, all_ties)
    cal = None if caliper is None else float(caliper) + tol
    calipers = (ps if cal is not None else None, cal, cal_mat, cal_width)
    if replace:
        return _nn_general_replace(search, ind1, ratio, calipers)
    available = np.ones(n0, dtype=bool)
    for r in range(ratio):
        for t in ord1:
            ti = ind1[t]
            elig = _within_calipers(available.copy(), ind0, ti, calipers)
            if not elig.any():
                continue
            c = search.pick(ti, elig, 1)[0]
            mm[t, r] = ind0[c]
            available[c] = False
    return mm


@dataclass(frozen=True)
class _Nearest:
    """The controls' whitened covariates and tie keys, for :func:`nn_general`."""

    z: np.ndarray
    ind0: np.ndarray
    z0: np.ndarray
    key0: np.ndarray
    tol: float
    all_ties: bool

    def pick(self, ti: int, elig: np.ndarray, k: int) -> np.ndarray:
        """Local indices of the k nearest eligible controls of unit ``ti`` (ties by key), or with
        ``all_ties`` every eligible control as near as the k-th."""
        cand = np.flatnonzero(elig)
        d = np.sqrt(((self.z0[cand] - self.z[ti]) ** 2).sum(axis=1))
        dc = tie_canonical(d, self.tol)
        o = np.lexsort((self.key0[cand], dc))
        if self.all_ties:
            kth = dc[o[min(k, o.size) - 1]]
            return cand[o[dc[o] <= kth]]
        return cand[o[:k]]


#: (propensity score or None, its caliper + tol or None, covariate caliper matrix, widths)
_Calipers = tuple[np.ndarray | None, float | None, np.ndarray | None, np.ndarray | None]


def _within_calipers(elig: np.ndarray, ind0: np.ndarray, ti: int, calipers: _Calipers) -> np.ndarray:
    """``elig`` restricted to the controls within the calipers of unit ``ti``."""
    ps, cal, cal_mat, cal_width = calipers
    if cal is not None and ps is not None:
        elig &= np.abs(ps[ind0] - ps[ti]) <= cal
    if cal_mat is not None and cal_width is not None:
        elig &= np.all(np.abs(cal_mat[ind0] - cal_mat[ti]) <= cal_width, axis=1)
    return elig


def _nn_general_replace(search: _Nearest, ind1: np.ndarray, ratio: int, calipers: _Calipers) -> np.ndarray:
    """:func:`nn_general` with replacement: every treated unit its nearest controls; without
    calipers the candidates are found with :class:`scipy.spatial.cKDTree`."""
    z, ind0, tol = search.z, search.ind0, search.tol
    n1, n0 = ind1.size, ind0.size
    balls = None
    if calipers[1] is None and calipers[2] is None:
        from scipy.spatial import cKDTree

        tree = cKDTree(search.z0)
        kq = min(ratio, n0)
        dd, _ = tree.query(z[ind1], k=kq)
        dk = np.asarray(dd).reshape(n1, kq)[:, -1]
        balls = tree.query_ball_point(z[ind1], r=dk + 2 * tol + 1e-12 * (1 + dk))
    rows: list[np.ndarray] = []
    for t in range(n1):
        ti = ind1[t]
        if balls is not None:
            elig = np.zeros(n0, dtype=bool)
            elig[np.asarray(balls[t], dtype=np.int64)] = True
        else:
            elig = _within_calipers(np.ones(n0, dtype=bool), ind0, ti, calipers)
        rows.append(ind0[search.pick(ti, elig, ratio)] if elig.any() else np.empty(0, dtype=np.int64))
    width = max([ratio, *(m.size for m in rows)]) if search.all_ties else ratio
    out = np.full((n1, width), -1, dtype=np.int64)
    for t, m in enumerate(rows):
        out[t, : m.size] = m
    return out


def _n_matches(mm: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    """Number of matched controls of every treated row of ``mm`` (in units when ``counts``)."""
    if counts is None:
        return (mm >= 0).sum(axis=1)
    return np.where(mm >= 0, np.asarray(counts, dtype=float)[np.clip(mm, 0, None)], 0.0).sum(axis=1)


def weights_from_mm(mm: np.ndarray, treat: np.ndarray, ind1: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """MatchIt's ``weights_matrixC`` for the ATT.

    Matched treated units get 1.  A control gets the sum, over the treated units it is matched to,
    of one over that treated unit's number of matches; control weights are then scaled so that
    they sum to the number of matched controls.  With ``counts`` every entry stands for that many
    identical units (compressed data): the weight is each unit's, and sums count units.
    """
    w = np.zeros(treat.size)
    n_match = _n_matches(mm, counts)
    has = n_match > 0
    w[ind1[has]] = 1.0
    rows, cols = np.nonzero(mm >= 0)
    share = 1.0 if counts is None else np.asarray(counts, dtype=float)[ind1[rows]]
    np.add.at(w, mm[rows, cols], share / n_match[rows])
    ctrl = treat == 0
    wc = w[ctrl]
    c = np.ones(wc.size) if counts is None else np.asarray(counts, dtype=float)[ctrl]
    total = (c * wc).sum()
    if total > 0:
        w[ctrl] = wc * (c * (wc > 0)).sum() / total
    return w


def subclass_from_mm(mm: np.ndarray, ind1: np.ndarray, n: int) -> np.ndarray:
    """MatchIt's ``mm2subclass``: one subclass per matched treated unit, 1-based.

    MatchIt labels each subclass by the treated unit's 1-based row number *as text* and then
    renumbers the factor levels, so subclasses are numbered in the lexicographic order of those
    row numbers ("1", "10", "100", "101", ..., "2", ...).  This reproduces that numbering; 0 means
    unmatched.
    """
    sub = np.zeros(n, dtype=np.int64)
    has = (mm >= 0).any(axis=1)
    rows1 = ind1[has] + 1
    # rank of each row number in the lexicographic order of its decimal text
    text_order = np.argsort(rows1.astype(str), kind="stable")
    number = np.empty(rows1.size, dtype=np.int64)
    number[text_order] = np.arange(1, rows1.size + 1)
    sub[ind1[has]] = number
    mm_has = mm[has]
    r, c = np.nonzero(mm_has >= 0)
    sub[mm_has[r, c]] = number[r]  # a control matched twice (with replacement): last one wins
    return sub


def combined_weights(
    mm: np.ndarray, treat: np.ndarray, ind1: np.ndarray, sw: np.ndarray, w: np.ndarray, strategy: str,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Survey x matching weights.

    ``"keep"``: every unit keeps its own survey weight (Austin et al. 2018), ``sw * w``.
    ``"inherit"``: treated units keep theirs; a matched control carries, for every treated partner, the
    partner's survey weight divided by the partner's number of matches (Lenis et al. 2019).
    With ``counts`` (compressed data) ``sw`` holds every entry's summed survey weights and the
    result the entry's summed combined weights.
    """
    if strategy == "keep":
        return sw * w
    comb = np.where(treat == 1, sw * w, 0.0)
    n_match = _n_matches(mm, counts)
    rows, cols = np.nonzero(mm >= 0)
    np.add.at(comb, mm[rows, cols], sw[ind1[rows]] / n_match[rows])
    if counts is not None:
        ctrl = treat == 0
        comb[ctrl] *= np.asarray(counts, dtype=float)[ctrl]
    return comb
