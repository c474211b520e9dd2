"""Small-cell suppression for frequency tables (statistical disclosure control).

:func:`suppress` protects the count columns of a table before it is published:

1. **Primary suppression** (threshold rule): a count ``0 < n < threshold`` is suppressed (zeros too
   with ``suppress_zeros=True``).  The default threshold is 5; 10 is the strict option.
2. **Secondary (complementary) suppression**: the published totals are the *group totals* — within
   each block of rows sharing the ``by`` columns, the total of every count column (column totals) and,
   when there are several count columns and ``row_totals`` is true, the total of every row.  When a
   group has exactly one suppressed cell, that cell could be recovered by subtracting the published
   cells from the total, so the group's smallest published non-zero cell (else its smallest zero) is
   suppressed as well.  This repeats until no group has exactly one suppressed cell (a fixed point).
3. **Audit** (``audit=True``): rules 1-2 stop single-equation recovery, but a combination of row and
   column totals can still pin a cell down (e.g. a suppressed cell that bridges two otherwise separate
   patterns).  The audit finds every suppressed cell that the totals determine uniquely, as a linear
   system (a cell is determined when every null-space vector of the constraint matrix is zero on it),
   suppresses one more complementary cell next to it and returns to step 2.
4. Percentages listed in ``pct_cols`` are suppressed where their count is.

A group with a single cell (one row in a block) publishes that cell as its total; when that cell is
suppressed the total must be withheld too: such totals are listed in
:attr:`SuppressedTable.withheld_totals`.  Interval (bounds) attacks that use non-negativity are not
covered; neither is the dominance rule, which concerns magnitude tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

__all__ = ["SuppressedTable", "suppress"]

PRIMARY = "primary"
SECONDARY = "secondary"


@dataclass(frozen=True)
class SuppressedTable:
    """A table after small-cell suppression.

    Attributes
    ----------
    table
        The input with suppressed counts (and their percentages) set to missing (``pd.NA``).
    flags
        For each count column, ``''`` (published), ``'primary'`` or ``'secondary'``.
    threshold
        Counts below it (and above zero, unless zeros are suppressed) were primary-suppressed.
    withheld_totals
        Group totals that must not be published (single-cell groups whose cell is suppressed), as
        ``(block, count column or row label)`` descriptions.
    """

    table: pd.DataFrame
    flags: pd.DataFrame
    threshold: int
    withheld_totals: tuple[str, ...] = ()

    @property
    def n_primary(self) -> int:
        """Number of primary-suppressed cells."""
        return int((self.flags == PRIMARY).to_numpy().sum())

    @property
    def n_secondary(self) -> int:
        """Number of secondary-suppressed cells."""
        return int((self.flags == SECONDARY).to_numpy().sum())

    @property
    def mask(self) -> pd.DataFrame:
        """True where a count is suppressed."""
        return self.flags != ""

    def summary(self) -> str:
        """One line: cells suppressed and why."""
        n = self.flags.size
        s = (
            f"Suppression (threshold {self.threshold}): {self.n_primary} primary and {self.n_secondary} "
            f"secondary of {n} cells suppressed"
        )
        if self.withheld_totals:
            s += f"; {len(self.withheld_totals)} total(s) withheld"
        return s

    def to_frame(self) -> pd.DataFrame:
        """The published table with a ``<column>_flag`` column per count column."""
        out = self.table.copy()
        for c in self.flags.columns:
            out[f"{c}_flag"] = self.flags[c].to_numpy()
        return out


def suppress(
    table: pd.DataFrame,
    count_cols: str | Sequence[str],
    threshold: int = 5,
    *,
    by: str | Sequence[str] | None = None,
    row_totals: bool = True,
    pct_cols: Mapping[str, str] | None = None,
    suppress_zeros: bool = False,
    audit: bool = True,
) -> SuppressedTable:
    """Suppress small counts and their complements so that none can be recovered from the totals.

    Parameters
    ----------
    table
        A frame with one cell per row and count column (tidy or wide).
    count_cols
        The count column(s).
    threshold
        Primary suppression of counts below it (``>= 1``; default 5).
    by
        Columns that split the table into independent blocks (e.g. the variable of a stacked
        profile table); totals are published per block.
    row_totals
        Whether row totals across several count columns are published (and protected).
    pct_cols
        ``{percentage column: count column}``: percentages suppressed with their count.
    suppress_zeros
        Also primary-suppress zero counts.
    audit
        Run the linear-algebra audit (step 3 in the module docstring).

    Returns
    -------
    SuppressedTable
    """
    import numpy as np
    import pandas as pd

    cols = [count_cols] if isinstance(count_cols, str) else list(count_cols)
    by_cols = [] if by is None else ([by] if isinstance(by, str) else list(by))
    _check_args(table, cols, by_cols, threshold, pct_cols or {})
    values = table[cols].to_numpy(dtype=float)
    if np.isnan(values).any() or (values < 0).any():
        bad = np.argwhere(np.isnan(values) | (values < 0))[0]
        raise ConfigError(
            "Counts must be non-negative numbers without missing values",
            column=cols[bad[1]],
            row=int(bad[0]) + 1,
            expected="counts >= 0",
            found=repr(values[bad[0], bad[1]]),
            hint="suppress the raw counts, before any earlier suppression or rounding",
        )
    flags = np.full(values.shape, "", dtype=object)
    primary = (values < threshold) & ((values > 0) | suppress_zeros)
    flags[primary] = PRIMARY
    withheld: list[str] = []
    blocks: list[tuple[Any, Any]]
    if by_cols:
        blocks = list(table.groupby(by_cols, sort=False, dropna=False).indices.items())
    else:
        blocks = [((), np.arange(len(table)))]
    for name, rows in blocks:
        rows = np.asarray(rows)
        sub_flags, sub_withheld = _protect(values[rows], flags[rows], row_totals and len(cols) > 1, audit)
        flags[rows] = sub_flags
        label = name if by_cols else "table"
        withheld += [f"{label}: {cols[j] if kind == 'col' else f'row {int(rows[j]) + 1}'}" for kind, j in sub_withheld]

    out = table.copy()
    sup = flags != ""
    for j, c in enumerate(cols):
        out[c] = pd.array(np.where(sup[:, j], 0, values[:, j]).astype(np.int64), dtype="Int64")
        out.loc[sup[:, j], c] = pd.NA
    for pc, cc in (pct_cols or {}).items():
        j = cols.index(cc)
        out[pc] = out[pc].astype("Float64")
        out.loc[sup[:, j], pc] = pd.NA
    flag_frame = pd.DataFrame(flags, columns=cols, index=table.index)
    return SuppressedTable(table=out, flags=flag_frame, threshold=int(threshold), withheld_totals=tuple(withheld))


def _check_args(table: pd.DataFrame, cols: list[str], by_cols: list[str], threshold: int, pct: Mapping[str, str]) -> None:
    for c in [*cols, *by_cols, *pct.keys()]:
        if c not in table.columns:
            raise ConfigError(
                "A column named for suppression is not in the table",
                column=c,
                expected="one of " + ", ".join(map(str, table.columns)),
                found=repr(c),
            )
    for pc, cc in pct.items():
        if cc not in cols:
            raise ConfigError(
                "A percentage column must refer to a count column",
                param="pct_cols",
                expected="{percentage column: one of " + ", ".join(cols) + "}",
                found=f"{pc!r}: {cc!r}",
            )
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ConfigError(
            "The suppression threshold must be a positive whole number",
            param="threshold",
            expected="an integer >= 1 (5 by default; 10 is strict)",
            found=repr(threshold),
        )


def _groups(r: int, c: int, row_totals: bool) -> list[tuple[tuple[str, int], np.ndarray]]:
    """Published groups of an r x c block as (kind, index) and flat cell indices."""
    import numpy as np

    idx = np.arange(r * c).reshape(r, c)
    groups = [(("col", j), idx[:, j]) for j in range(c)]
    if row_totals:
        groups += [(("row", i), idx[i, :]) for i in range(r)]
    return groups


def _protect(
    values: np.ndarray, flags: np.ndarray, row_totals: bool, audit: bool
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """Secondary suppression in one block: flags (``""``, primary, secondary) and the totals withheld.

    Passes suppress a complement in every published group with a single suppressed cell until none
    is left; with ``audit``, a suppressed cell that the published totals still determine gets a
    complement next to it, or (when there is none) its groups' totals are withheld.
    """
    r, c = values.shape
    v = values.ravel()
    f = flags.ravel().copy()
    groups = _groups(r, c, row_totals)
    withheld: set[tuple[str, int]] = set()
    while True:
        if _suppress_complements(groups, withheld, v, f):
            continue
        if not audit:
            break
        determined = _determined(f != "", [cells for key, cells in groups if key not in withheld], r * c)
        if not determined:
            break
        _protect_determined(determined, groups, withheld, v, f)
    return f.reshape(r, c), sorted(withheld)


def _complement(cells: np.ndarray, v: np.ndarray, f: np.ndarray) -> int | None:
    """The cell of ``cells`` to suppress beside a suppressed one: the smallest free non-zero count (else the smallest free)."""
    import numpy as np

    free = cells[f[cells] == ""]
    if len(free) == 0:
        return None
    nonzero = free[v[free] > 0]
    pool = nonzero if len(nonzero) else free
    return int(pool[np.argmin(v[pool])])


def _suppress_complements(groups: list[tuple[tuple[str, int], np.ndarray]], withheld: set[tuple[str, int]], v: np.ndarray, f: np.ndarray) -> bool:
    """One pass over the published groups: a group with a single suppressed cell gets a complement
    suppressed (a group of one cell has its total withheld).  Whether a cell was suppressed."""
    changed = False
    for key, cells in groups:
        if key in withheld or int((f[cells] != "").sum()) != 1:
            continue
        if len(cells) == 1:
            withheld.add(key)
            continue
        k = _complement(cells, v, f)
        if k is None:  # pragma: no cover - len(cells) > 1 and one suppressed leaves a free cell
            continue
        f[k] = SECONDARY
        changed = True
    return changed


def _protect_determined(determined: list[int], groups: list[tuple[tuple[str, int], np.ndarray]], withheld: set[tuple[str, int]], v: np.ndarray, f: np.ndarray) -> None:
    """Suppress a complement beside the first determined cell that has one; when none has, withhold
    the totals of the determined cells' groups."""
    for j in determined:
        options = [_complement(cells, v, f) for key, cells in groups if j in cells and key not in withheld]
        options = [o for o in options if o is not None]
        if options:
            k = min(options, key=lambda o: (v[o] == 0, v[o]))
            f[k] = SECONDARY
            return
    # nothing left to suppress next to the determined cells: withhold their groups' totals
    for j in determined:
        withheld |= {key for key, cells in groups if j in cells}


def _determined(sup: np.ndarray, groups: list[np.ndarray], n: int) -> list[int]:
    """Suppressed cells whose value follows uniquely from the published totals and cells."""
    import numpy as np
    from scipy.linalg import null_space

    cells = np.flatnonzero(sup)
    if len(cells) == 0:
        return []
    pos = {int(cell): i for i, cell in enumerate(cells)}
    rows = []
    for g in groups:
        row = np.zeros(len(cells))
        hit = False
        for cell in g:
            i = pos.get(int(cell))
            if i is not None:
                row[i] = 1.0
                hit = True
        if hit:
            rows.append(row)
    if not rows:
        return []
    ns = null_space(np.vstack(rows))
    if ns.shape[1] == 0:
        return [int(x) for x in cells]
    free = np.abs(ns).max(axis=1) > 1e-9
    return [int(cells[i]) for i in np.flatnonzero(~free)]
