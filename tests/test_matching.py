"""Invariant and hand-computed tests of matching (no R needed).

The fast union-find kernel is checked against a brute-force greedy matcher written from
MatchIt's description; caliper and replace-with-ratio specifications (buggy in MatchIt 4.5.1) are
checked by invariants only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.matching import balance, match, propensity_score
from analysis.matching.algorithms import nn_sorted
from survey.errors import ConfigError, DataValidationError


def _brute(dist, treat, ord1, ratio, caliper=None):
    """Greedy nearest neighbour by exhaustive search, MatchIt 4.7's order and tie rule.

    Of two equally near controls (exactly: MatchIt compares doubles) the one fewer sorted
    positions away, the left one at an equal number (see ``_matchit47_walk`` below).
    """
    order = np.argsort(dist, kind="stable")
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    ind1 = np.flatnonzero(treat == 1)
    avail = set(np.flatnonzero(treat == 0).tolist())
    mm = np.full((ind1.size, ratio), -1)
    for r in range(ratio):
        for t in ord1:
            i = ind1[t]
            left = [c for c in avail if pos[c] < pos[i]]
            right = [c for c in avail if pos[c] > pos[i]]
            kl = max(left, key=lambda c: pos[c]) if left else None
            kr = min(right, key=lambda c: pos[c]) if right else None
            cands = []
            for k in (kl, kr):
                if k is not None and (caliper is None or abs(dist[k] - dist[i]) <= caliper):
                    cands.append(k)
            if not cands:
                continue
            if len(cands) == 2:
                dl, dr = abs(dist[kl] - dist[i]), abs(dist[kr] - dist[i])
                if dl == dr:
                    k = kl if pos[i] - pos[kl] <= pos[kr] - pos[i] else kr
                else:
                    k = kl if dl < dr else kr
            else:
                k = cands[0]
            mm[t, r] = k
            avail.discard(k)
    return mm


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ratio", [1, 2])
def test_fast_kernel_equals_brute_force(seed: int, ratio: int) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    dist = np.round(rng.uniform(size=n), 2)  # many ties
    treat = (rng.uniform(size=n) < 0.3).astype(int)
    n1 = treat.sum()
    ord1 = rng.permutation(n1)
    cal = 0.05 if seed % 2 else None
    got = nn_sorted(dist, treat, ord1, ratio, False, cal)
    np.testing.assert_array_equal(got, _brute(dist, treat, ord1, ratio, cal))


def test_replacement_takes_nearest_and_matchit_47_on_ties() -> None:
    dist = np.array([0.5, 0.4, 0.6, 0.45, 0.9])
    treat = np.array([1, 0, 0, 1, 0])
    mm = nn_sorted(dist, treat, np.array([0, 1]), 1, True, None)
    # sorted: 0.4 (C1), 0.45 (T3), 0.5 (T0), 0.6 (C2), 0.9.  0.5 is equally far (in doubles too)
    # from 0.4 and 0.6: MatchIt 4.7 keeps 0.6, one sorted position away (0.4 is two); 0.45 -> 0.4
    np.testing.assert_array_equal(mm[:, 0], [2, 1])
    # with a tie-break key (ties="label") the left one wins
    np.testing.assert_array_equal(nn_sorted(dist, treat, np.array([0, 1]), 1, True, None, tiebreak=np.arange(5))[:, 0], [1, 1])
    mm2 = nn_sorted(dist, treat, np.array([0, 1]), 2, True, None)
    np.testing.assert_array_equal(mm2, [[2, 1], [1, 2]])


@pytest.fixture(scope="module")
def sim() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 600
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    g = rng.choice(["a", "b", "c"], size=n)
    t = rng.binomial(1, 1 / (1 + np.exp(-(-1 + 0.8 * x1 - 0.5 * x2))))
    w = rng.uniform(0.5, 2.0, size=n)
    y = 3 + 0.3 * t + 0.5 * x1 + rng.normal(size=n)
    return pd.DataFrame({"t": t, "x1": x1, "x2": x2, "g": g, "sw": w, "y": y},
                        index=[f"u{i}" for i in range(n)])


F = "t ~ x1 + x2 + g"


def test_caliper_invariant(sim: pd.DataFrame) -> None:
    m = match(sim, F, caliper=0.1)
    sd = m.distance.std(ddof=1)
    d = m.distance
    for t_lab, c_lab in m.match_matrix[1].dropna().items():
        assert abs(d[t_lab] - d[c_lab]) <= 0.1 * sd
    unmatched = m.match_matrix[1].isna()
    assert unmatched.any()
    assert m.settings["caliper_abs"]["<distance>"] == pytest.approx(0.1 * sd)


def test_covariate_caliper_and_exact(sim: pd.DataFrame) -> None:
    m = match(sim, F, caliper={"x1": 0.2}, exact="g", std_caliper=False)
    for t_lab, c_lab in m.match_matrix[1].dropna().items():
        assert abs(sim.x1[t_lab] - sim.x1[c_lab]) <= 0.2
        assert sim.g[t_lab] == sim.g[c_lab]


def test_replace_ratio_weights_invariants(sim: pd.DataFrame) -> None:
    m = match(sim, F, replace=True, ratio=3)
    t = m.treat.to_numpy()
    w = m.weights.to_numpy()
    assert np.all(w[t == 1] == 1)
    # control weights sum to the number of matched controls
    assert w[t == 0].sum() == pytest.approx((w[t == 0] > 0).sum())
    assert m.subclass.isna().all()
    # each treated unit's 3 matches are its 3 nearest controls
    d = m.distance
    ctrl = d[t == 0].to_numpy()
    for t_lab, row in m.match_matrix.iterrows():
        got = np.sort(np.abs(d[list(row)].to_numpy() - d[t_lab]))
        best = np.sort(np.abs(ctrl - d[t_lab]))[:3]
        np.testing.assert_allclose(got, best)


def test_survey_weight_strategies(sim: pd.DataFrame) -> None:
    keep = match(sim, F, s_weights="sw", survey_weight_strategy="keep")
    inh = match(sim, F, s_weights="sw", survey_weight_strategy="inherit")
    np.testing.assert_allclose(keep.combined_weights, sim.sw * keep.weights)
    t = inh.treat.to_numpy() == 1
    cw = inh.combined_weights.to_numpy()
    # 1:1 without replacement: control group carries exactly the treated survey weights
    assert cw[~t].sum() == pytest.approx(cw[t].sum())
    for t_lab, c_lab in inh.match_matrix[1].dropna().items():
        assert inh.combined_weights[c_lab] == pytest.approx(sim.sw[t_lab])


def test_random_order_reproducible(sim: pd.DataFrame) -> None:
    a = match(sim, F, m_order="random", rng=np.random.default_rng(3))
    b = match(sim, F, m_order="random", seed=3)
    pd.testing.assert_frame_equal(a.match_matrix, b.match_matrix)
    with pytest.raises(ConfigError):
        match(sim, F, m_order="random")


def test_balance_improves_and_frames(sim: pd.DataFrame) -> None:
    m = match(sim, F, s_weights="sw")
    b = balance(m, sim, population_means={"x1": 0.0})
    assert abs(b.after.loc["distance", "Std. Mean Diff."]) < abs(
        b.before.loc["distance", "Std. Mean Diff."])
    assert list(b.before.index) == ["distance", "x1", "x2", "ga", "gb", "gc"]
    lp = b.love_plot_frame()
    assert set(lp["sample"]) == {"Unadjusted", "Adjusted"}
    assert "SD of the treated group" in b.summary()
    assert b.population is not None
    assert b.to_frame().shape[0] == 6
    assert "Sample sizes" in m.summary()


def test_propensity_support_and_errors(sim: pd.DataFrame) -> None:
    ps = propensity_score(sim, F, weights="sw")
    assert ps.weighted
    assert ps.support.loc["treated", "n"] == sim.t.sum()
    assert "Common support" in ps.summary()
    bad = sim.assign(t=sim.t + 1)
    with pytest.raises(DataValidationError):
        match(bad, F)
    with pytest.raises(ConfigError):
        match(sim, F, ratio=0)
    with pytest.raises(ConfigError):
        match(sim, F, distance="mahalanobis", m_order="largest")


# --------------------------------------------------------------------------- ties


def _brute_all_ties(dist, treat, ratio, caliper=None, tol=1e-8):
    """Abadie-Imbens match sets by exhaustive search: all controls as near as the ratio-th."""
    ind0 = np.flatnonzero(treat == 0)
    out = []
    for i in np.flatnonzero(treat == 1):
        d = np.abs(dist[ind0] - dist[i])
        ok = d <= (np.inf if caliper is None else caliper + tol)
        if not ok.any():
            out.append(set())
            continue
        kth = np.sort(d[ok])[min(ratio, ok.sum()) - 1]
        out.append(set(ind0[ok & (d <= kth + tol)].tolist()))
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ratio", [1, 3])
def test_all_ties_kernel_equals_brute_force(seed: int, ratio: int) -> None:
    from analysis.matching.algorithms import nn_sorted_all

    rng = np.random.default_rng(seed)
    n = 150
    dist = np.round(rng.uniform(size=n), 2)  # many exact ties, also equidistant left/right
    treat = (rng.uniform(size=n) < 0.3).astype(int)
    cal = 0.03 if seed % 2 else None
    mm = nn_sorted_all(dist, treat, ratio, cal, tol=1e-8)
    got = [set(r[r >= 0].tolist()) for r in mm]
    assert got == _brute_all_ties(dist, treat, ratio, cal)
    # 1-ulp noise on the distances changes nothing once ties are canonicalised
    from analysis.matching.algorithms import tie_canonical

    noisy = dist * (1 + rng.choice([-1, 0, 1], size=n) * np.finfo(float).eps)
    mm2 = nn_sorted_all(tie_canonical(noisy, 1e-8), treat, ratio, cal, tol=1e-8)
    assert [set(r[r >= 0].tolist()) for r in mm2] == got


def test_tie_canonical_merges_noise_only() -> None:
    from analysis.matching.algorithms import tie_canonical

    v = np.array([0.3, 0.3 + 1e-16, 0.5, 0.3 - 5e-17, 0.5 + 2e-9, 0.50001])
    c = tie_canonical(v, 1e-8)
    assert c[0] == c[1] == c[3] == min(v[[0, 1, 3]])
    assert c[2] == c[4] == 0.5
    assert c[5] == 0.50001


@pytest.fixture(scope="module")
def tied() -> pd.DataFrame:
    """Categorical covariates only: nearly every match is a tie."""
    rng = np.random.default_rng(5)
    n = 500
    a = rng.choice(["p", "q", "r"], size=n)
    b = rng.choice(["u", "v"], size=n)
    lin = -0.8 + 0.9 * (a == "q") - 0.6 * (a == "r") + 0.7 * (b == "v")
    t = rng.binomial(1, 1 / (1 + np.exp(-lin)))
    y = 2 + 0.4 * t + (a == "q") + rng.normal(size=n)
    sw = rng.uniform(0.5, 2, size=n)
    return pd.DataFrame({"t": t, "a": a, "b": b, "y": y, "sw": sw},
                        index=[f"r{i:04d}" for i in range(n)])


def _pairs(m) -> dict:
    mm = m.match_matrix
    return {t: frozenset(v for v in row if v is not None and v == v) for t, row in mm.iterrows()}


@pytest.mark.parametrize("spec", [
    {"replace": True},  # ties="all" by default
    {"replace": True, "ratio": 2},
    {"replace": True, "caliper": 0.1},
    {"replace": False},  # ties="label" by default
    {"replace": False, "m_order": "smallest", "ratio": 2},
    {"distance": "mahalanobis", "replace": True},
    {"distance": "mahalanobis", "replace": False, "m_order": "random", "seed": 4},
])
def test_matching_does_not_depend_on_row_order(tied: pd.DataFrame, spec: dict) -> None:
    ref = match(tied, "t ~ a + b", s_weights="sw", **spec)
    for seed in (1, 2, 3):
        shuffled = tied.sample(frac=1.0, random_state=seed)
        got = match(shuffled, "t ~ a + b", s_weights="sw", **spec)
        if spec.get("m_order") != "random":  # a random order is drawn per row order
            assert _pairs(got) == _pairs(ref)
            pd.testing.assert_series_equal(got.weights.loc[ref.weights.index], ref.weights,
                                           rtol=0, atol=1e-12)


def test_all_ties_share_the_weight(tied: pd.DataFrame) -> None:
    m = match(tied, "t ~ a + b", replace=True)
    assert m.settings["ties"] == "all"
    d = m.distance
    ctrl = d[m.treat == 0]
    n_match = m.match_matrix.notna().sum(axis=1)
    assert n_match.mean() > 5  # categorical covariates: many tied controls per treated unit
    for t_lab, row in m.match_matrix.head(30).iterrows():
        got = {v for v in row if v is not None}
        best = np.abs(ctrl - d[t_lab]).min()
        expected = set(ctrl.index[np.abs(ctrl - d[t_lab]) <= best + 1e-8])
        assert got == expected
    # every treated unit's weight 1 is spread over its matches: raw control weights sum to n1
    raw = pd.Series(0.0, index=tied.index)
    for _, row in m.match_matrix.iterrows():
        ids = [v for v in row if v is not None]
        raw[ids] += 1.0 / len(ids)
    w = m.weights[m.treat == 0]
    np.testing.assert_allclose(w, raw[m.treat == 0] * (w > 0).sum() / raw.sum(), atol=1e-12)


def test_all_tied_controls_reduce_the_variance_of_the_matched_estimate() -> None:
    """Over repeated samples, matching on every tied control (the default) gives a matched ATT with a smaller
    SD than one tied control per treated unit (MatchIt's rule), and both are unbiased.

    Categorical covariates make every match a tie.  80 samples of 400 estimate each SD within about 8 %;
    the expected ratio of the SDs is about 0.77 (seven tied controls on average instead of one), the
    bound 0.9.
    """
    rng = np.random.default_rng(12)
    est: dict[str, list[float]] = {"all": [], "matchit": []}
    for _ in range(80):
        n = 400
        a = rng.choice(["p", "q", "r"], size=n)
        b = rng.choice(["u", "v"], size=n)
        t = rng.binomial(1, 1 / (1 + np.exp(-(-0.8 + 0.9 * (a == "q") - 0.6 * (a == "r") + 0.7 * (b == "v")))))
        y = 2 + 0.4 * t + (a == "q") - 0.5 * (b == "v") + rng.normal(size=n)
        df = pd.DataFrame({"t": t, "a": a, "b": b, "y": y}, index=[f"r{i:04d}" for i in range(n)])
        for ties, values in est.items():
            w = match(df, "t ~ a + b", replace=True, ties=ties).weights.reindex(df.index).fillna(0.0).to_numpy()
            treated = t == 1
            values.append(np.average(y[treated], weights=w[treated]) - np.average(y[~treated], weights=w[~treated]))
    sd = {k: float(np.std(v, ddof=1)) for k, v in est.items()}
    assert sd["all"] < 0.9 * sd["matchit"], sd
    for values in est.values():
        assert abs(np.mean(values) - 0.4) < 3 * np.std(values, ddof=1) / np.sqrt(len(values))


def test_mahalanobis_ties_survive_floating_point_noise(tied: pd.DataFrame) -> None:
    """A 1-ulp difference between tied distances must not flip the chosen control."""
    df = tied.assign(x=np.where(tied["a"] == "q", 1.0, 0.3), z=np.where(tied["b"] == "v", 2.0, -1.0))
    noisy = df.assign(x=df["x"] * (1 + np.random.default_rng(0).choice([-1, 1], len(df)) * 2.2e-16))
    for kw in ({"replace": False, "ties": "matchit"}, {"replace": False}, {"replace": True}):
        a = match(df, "t ~ x + z", distance="mahalanobis", **kw)
        b = match(noisy, "t ~ x + z", distance="mahalanobis", **kw)
        assert _pairs(a) == _pairs(b)


def test_tie_rule_settings_are_checked(tied: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="replacement"):
        match(tied, "t ~ a + b", replace=False, ties="all")
    with pytest.raises(ConfigError, match="tie rule"):
        match(tied, "t ~ a + b", ties="first")
    with pytest.raises(ConfigError, match="tolerance"):
        match(tied, "t ~ a + b", tie_tolerance=-1.0)


# ---------------------------------------------------------------------------- MatchIt 4.7's tie rule
#
# ``ties="matchit"`` follows MatchIt 4.7 (checked against the source of MatchIt 4.7.0 and 4.7.2,
# ``src/internal.cpp``: ``find_control_vec``, called by ``nn_matchC_vec``; the tie handling is the
# same in both).  Units are sorted by (score, row) with R's ``order()``; from the treated unit the
# routine steps outwards one sorted position at a time, alternating and starting on the left,
# keeps the first eligible control within the caliper on each side, stops a side at a control
# strictly farther than one already found, and of the candidates keeps the nearer, the one found
# first when they are equally near.  ``_matchit47_walk`` restates that walk for ratio 1; MatchIt
# itself cannot run here (CRAN is out of reach and Debian ships 4.5.1), so the rule is checked on
# hand-worked cases and against the walk on random data full of ties.


def _matchit47_walk(dist: np.ndarray, treat: np.ndarray, order1: np.ndarray, replace: bool, caliper: float | None) -> np.ndarray:
    srt = np.argsort(dist, kind="stable")
    pos = np.empty(dist.size, dtype=int)
    pos[srt] = np.arange(dist.size)
    treated = np.flatnonzero(treat == 1)
    usable = treat == 0
    out = np.full(treated.size, -1)
    for j in order1:
        i = treated[j]
        lo = hi = pos[i]
        found: list[tuple[int, float]] = []
        stop = {"l": False, "r": False}
        got = {"l": 0, "r": 0}
        side = "r"
        while not (stop["l"] and stop["r"]):
            side = "r" if stop["l"] else "l" if stop["r"] else ("l" if side == "r" else "r")
            if got[side] == 1 or (lo <= 0 if side == "l" else hi >= dist.size - 1):
                stop[side] = True
                continue
            if side == "l":
                lo -= 1
                z = srt[lo]
            else:
                hi += 1
                z = srt[hi]
            if not usable[z]:
                continue
            d = abs(dist[i] - dist[z])
            if (caliper is not None and d > caliper) or (found and found[0][1] < d):
                stop[side] = True
                continue
            found.append((z, d))
            got[side] += 1
        if found:
            z = found[1][0] if len(found) == 2 and found[1][1] < found[0][1] else found[0][0]
            out[j] = z
            if not replace:
                usable[z] = False
    return out


def test_matchit_tie_rule_on_hand_worked_cases() -> None:
    # equal score: C0 T1 T2 C3 in data order.  T1: C0 one position left, C3 two right -> C0;
    # T2: C3 one position right, C0 two left -> C3 (the left-wins rule would take C0 twice)
    dist = np.full(4, 0.25)
    treat = np.array([0, 1, 1, 0])
    steps = nn_sorted(dist, treat, np.arange(2), 1, True, None)
    assert steps[:, 0].tolist() == [0, 3]
    left = nn_sorted(dist, treat, np.arange(2), 1, True, None, tiebreak=np.arange(4))
    assert left[:, 0].tolist() == [0, 0]
    # equally near on both sides, the left control three positions away, the right one adjacent
    dist = np.array([0.375, 0.4375, 0.46875, 0.5, 0.625])
    treat = np.array([0, 1, 1, 1, 0])
    for replace in (True, False):
        mm = nn_sorted(dist, treat, np.array([2, 1, 0]), 1, replace, None)
        assert mm[2, 0] == 4  # the treated unit at 0.5: 0.625 (1 position), not 0.375 (3)
    # without replacement: C0 C1 T2 T3 C4, processed in data order.  T2 takes C1 (adjacent); for
    # T3 the left walk passes T2 and the used C1 before C0 (3 positions), the right finds C4 (1)
    dist = np.full(5, 0.5)
    treat = np.array([0, 0, 1, 1, 0])
    assert nn_sorted(dist, treat, np.arange(2), 1, False, None)[:, 0].tolist() == [1, 4]
    assert nn_sorted(dist, treat, np.arange(2), 1, False, None, tiebreak=np.arange(5))[:, 0].tolist() == [1, 0]
    # MatchIt 4.5.1 (integer abs(): every difference below 1 is 0) keeps its own rule: always left
    assert nn_sorted(dist, treat, np.arange(2), 1, False, None, int_abs=True)[:, 0].tolist() == [1, 0]


@pytest.mark.parametrize("replace", [True, False])
@pytest.mark.parametrize("caliper", [None, 0.1])
def test_matchit_tie_rule_equals_its_walk_on_tied_data(replace: bool, caliper: float | None) -> None:
    rng = np.random.default_rng(47)
    for _ in range(40):
        n = int(rng.integers(8, 60))
        dist = rng.integers(0, 12, n) / 32.0  # dyadic: differences are exact, ties everywhere
        treat = (rng.random(n) < 0.35).astype(int)
        if treat.sum() == 0 or treat.sum() == n:
            continue
        order1 = rng.permutation(int(treat.sum()))
        got = nn_sorted(dist, treat, order1, 1, replace, caliper)[:, 0]
        np.testing.assert_array_equal(got, _matchit47_walk(dist, treat, order1, replace, caliper))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ratio", [1, 3])
@pytest.mark.parametrize("strategy", ["keep", "inherit"])
def test_matching_compressed_units_equals_matching_their_rows(seed: int, ratio: int, strategy: str) -> None:
    """Rows with the same treatment and score merged into one unit (counts, summed survey
    weights): every row keeps its matching weight and the unit gets its rows' combined weight."""
    from analysis.matching.nearest import match_arrays

    rng = np.random.default_rng(seed)
    k = 40  # units
    treat_u = (rng.uniform(size=k) < 0.35).astype(int)
    score_u = np.round(rng.uniform(0.05, 0.6, size=k), 2)  # equal scores across units too
    counts = rng.integers(1, 6, size=k)
    unit = np.repeat(np.arange(k), counts)
    sw = rng.uniform(0.5, 3.0, size=unit.size)
    # the rows in a scrambled order: the result must not depend on it
    perm = rng.permutation(unit.size)
    unit, sw = unit[perm], sw[perm]
    cal = 0.05 if seed % 2 else None
    rows = match_arrays(treat_u[unit], score=score_u[unit], s_weights=sw, ratio=ratio, replace=True,
                        ps_caliper=cal, ties="all", survey_weight_strategy=strategy)
    cells = match_arrays(treat_u, score=score_u, s_weights=np.bincount(unit, weights=sw, minlength=k),
                         ratio=ratio, replace=True, ps_caliper=cal, ties="all",
                         survey_weight_strategy=strategy, counts=counts)
    np.testing.assert_allclose(cells.weights[unit], rows.weights, rtol=1e-12)
    np.testing.assert_allclose(cells.combined_weights, np.bincount(unit, weights=rows.combined_weights, minlength=k), rtol=1e-12)
    assert (rows.weights > 0).any()


def test_matching_compressed_units_needs_all_ties() -> None:
    from analysis.matching.nearest import match_arrays

    with pytest.raises(ConfigError, match="Compressed units"):
        match_arrays(np.array([1, 0, 0]), score=np.array([0.2, 0.2, 0.3]), ties="label", counts=np.array([1, 2, 1]))
