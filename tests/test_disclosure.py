"""Small-cell suppression: primary and secondary rules, and that nothing can be recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.disclosure import suppress
from survey.errors import ConfigError


def _wide(matrix: list[list[int]]) -> pd.DataFrame:
    m = np.asarray(matrix)
    return pd.DataFrame(m, columns=[f"c{j}" for j in range(m.shape[1])]).assign(row=[f"r{i}" for i in range(m.shape[0])])


def _published_groups(shape: tuple[int, int], row_totals: bool) -> dict[str, list[tuple[int, int]]]:
    """Published totals of a wide table, named as in ``withheld_totals``."""
    r, c = shape
    groups = {f"table: c{j}": [(i, j) for i in range(r)] for j in range(c)}
    if row_totals and c > 1:
        groups |= {f"table: row {i + 1}": [(i, j) for j in range(c)] for i in range(r)}
    return groups


def _recoverable(mask: np.ndarray, groups: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    """Suppressed cells that the published totals pin down (independent rank test)."""
    cells = [tuple(x) for x in np.argwhere(mask)]
    if not cells:
        return []
    index = {cell: k for k, cell in enumerate(cells)}
    rows = []
    for g in groups:
        row = np.zeros(len(cells))
        for cell in g:
            if cell in index:
                row[index[cell]] = 1
        if row.any():
            rows.append(row)
    if not rows:
        return []
    a = np.vstack(rows)
    rank = np.linalg.matrix_rank(a)
    out = []
    for cell, k in index.items():
        e = np.zeros(len(cells))
        e[k] = 1
        if np.linalg.matrix_rank(np.vstack([a, e])) == rank:
            out.append(cell)
    return out


def test_primary_suppression_threshold_and_zeros() -> None:
    t = pd.DataFrame({"cat": list("abcde"), "n": [0, 1, 4, 5, 30]})
    res = suppress(t, "n", threshold=5)
    assert list(res.flags["n"]) == ["", "primary", "primary", "", ""]
    assert res.table["n"].isna().tolist() == [False, True, True, False, False]
    strict = suppress(t, "n", threshold=10)
    assert strict.flags["n"].tolist()[3] == "primary"
    with_zero = suppress(t, "n", threshold=5, suppress_zeros=True)
    assert with_zero.flags["n"].iloc[0] == "primary"


def test_secondary_suppression_of_single_suppressed_cell_in_column() -> None:
    t = pd.DataFrame({"cat": list("abcd"), "n": [3, 40, 12, 25]})
    res = suppress(t, "n")
    assert res.flags["n"].tolist() == ["primary", "", "secondary", ""]  # 12 is the smallest other cell
    assert (res.n_primary, res.n_secondary) == (1, 1)
    assert "1 primary and 1 secondary" in res.summary()


def test_secondary_prefers_nonzero_complements() -> None:
    t = pd.DataFrame({"cat": list("abcd"), "n": [2, 0, 9, 50]})
    res = suppress(t, "n")
    assert res.flags["n"].tolist() == ["primary", "", "secondary", ""]


def test_percentages_follow_their_counts() -> None:
    t = pd.DataFrame({"cat": list("abc"), "n": [2, 30, 68]})
    t["pct"] = 100 * t["n"] / t["n"].sum()
    res = suppress(t, "n", pct_cols={"pct": "n"})
    assert res.table["pct"].isna().tolist() == [True, True, False]
    assert res.to_frame()["n_flag"].tolist() == ["primary", "secondary", ""]


def test_blocks_are_protected_separately() -> None:
    t = pd.DataFrame({"variable": ["sex", "sex", "educ", "educ", "educ"], "cat": list("MVlmh"), "n": [3, 97, 20, 30, 50]})
    res = suppress(t, "n", by="variable")
    assert res.flags["n"].tolist() == ["primary", "secondary", "", "", ""]


def test_wide_table_rows_and_columns_protected() -> None:
    t = _wide([[2, 30, 40], [20, 25, 35], [22, 28, 33]])
    res = suppress(t, ["c0", "c1", "c2"])
    mask = res.mask.to_numpy()
    assert mask.sum() == 4  # the classic 2 x 2 pattern
    groups = list(_published_groups(mask.shape, True).values())
    assert all(sum(mask[i, j] for i, j in g) != 1 for g in groups)
    assert _recoverable(mask, groups) == []


def test_single_row_block_withholds_its_total() -> None:
    t = pd.DataFrame({"variable": ["a", "b", "b"], "cat": ["x", "y", "z"], "n": [3, 10, 20]})
    res = suppress(t, "n", by="variable")
    assert res.flags["n"].tolist() == ["primary", "", ""]
    assert len(res.withheld_totals) == 1 and "a" in res.withheld_totals[0]


def test_bad_arguments() -> None:
    t = pd.DataFrame({"n": [1, 2]})
    with pytest.raises(ConfigError, match="threshold"):
        suppress(t, "n", threshold=0)
    with pytest.raises(ConfigError, match="not in the table"):
        suppress(t, "m")
    with pytest.raises(ConfigError, match="non-negative"):
        suppress(pd.DataFrame({"n": [1.0, -2.0]}), "n")
    with pytest.raises(ConfigError, match="count column"):
        suppress(t.assign(p=0.5), "n", pct_cols={"p": "q"})


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda r: st.integers(1, 5).flatmap(
            lambda c: st.lists(
                st.lists(st.one_of(st.integers(0, 6), st.integers(0, 60)), min_size=c, max_size=c), min_size=r, max_size=r
            )
        )
    ),
    st.sampled_from([3, 5, 10]),
    st.booleans(),
)
def test_no_suppressed_cell_can_be_recovered(matrix: list[list[int]], threshold: int, row_totals: bool) -> None:
    t = _wide(matrix)
    cols = [c for c in t.columns if c.startswith("c")]
    res = suppress(t, cols, threshold=threshold, row_totals=row_totals)
    mask = res.mask.to_numpy()
    values = np.asarray(matrix)
    # primary rule
    small = (values > 0) & (values < threshold)
    assert mask[small].all()
    # published values are the true values
    pub = res.table[cols].to_numpy(dtype=object)
    assert all(pub[i, j] == values[i, j] for i, j in zip(*np.nonzero(~mask), strict=True))
    # no recovery by subtraction nor by combining totals, except through totals that are withheld
    groups = _published_groups(mask.shape, row_totals)
    kept = [g for name, g in groups.items() if name not in set(res.withheld_totals)]
    assert all(sum(mask[i, j] for i, j in g) != 1 for g in kept)
    assert _recoverable(mask, kept) == []
