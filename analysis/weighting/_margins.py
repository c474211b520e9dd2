"""Population margins: parsing, encoding as integer codes, and the sparse-cell collapse rule.

A margin maps the categories of one column (or of a tuple of columns, a *joint* margin) to
population totals.  Sample rows are encoded once as integer cell codes so that every later
step (raking, post-stratification, calibration, variance) works with ``np.bincount`` and
fancy indexing only.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from survey.errors import ConfigError, DataValidationError

__all__ = ["CollapseRecord", "Margin", "MarginSpec", "prepare_margins"]

logger = logging.getLogger(__name__)

MarginKey = str | tuple[str, ...]
MarginSpec = Mapping[MarginKey, Mapping[Hashable, float] | pd.Series | float]

_MAX_LISTED = 10


@dataclass(frozen=True)
class CollapseRecord:
    """One application of the sparse-cell collapse rule.

    Attributes
    ----------
    margin
        Name of the margin (column name, or ``"a x b"`` for a joint margin).
    merged
        Labels of the cells that were merged, in margin order.
    label
        Label of the merged cell.
    respondents
        Respondent counts of the merged cells before merging.
    reason
        ``"empty"`` (a cell without respondents) or ``"sparse"`` (fewer than ``min_cell``).
    """

    margin: str
    merged: tuple[str, ...]
    label: str
    respondents: tuple[int, ...]
    reason: str


@dataclass(frozen=True, eq=False)
class Margin:
    """A categorical margin encoded against the sample.

    Attributes
    ----------
    name
        Display name (column, or ``"a x b"`` for a joint margin).
    columns
        The sample column(s) the margin is defined on.
    labels
        Cell labels, after any collapse.
    codes
        Cell index of every sample row (``int``; values ``0 .. len(labels)-1``).
    totals
        Population total of every cell.
    counts
        Respondent count of every cell.
    """

    name: str
    columns: tuple[str, ...]
    labels: tuple[str, ...]
    codes: np.ndarray
    totals: np.ndarray
    counts: np.ndarray

    @property
    def ncells(self) -> int:
        """Number of cells."""
        return len(self.labels)

    def sums(self, weights: np.ndarray) -> np.ndarray:
        """Weighted cell sums; ``weights`` of shape (n,) or (n, r) give (k,) or (k, r)."""
        return cell_sums(self.codes, self.ncells, weights)


def cell_sums(codes: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Sum ``weights`` within cells; vectorised over the columns of a 2-D array."""
    if weights.ndim == 1:
        return np.bincount(codes, weights=weights, minlength=k)
    r = weights.shape[1]
    flat = (codes[:, None] * r + np.arange(r)[None, :]).ravel()
    return np.bincount(flat, weights=weights.ravel(), minlength=k * r).reshape(k, r)


def _label(value: Any) -> str:
    if isinstance(value, tuple):
        return " x ".join(str(v) for v in value)
    return str(value)


def _margin_name(key: MarginKey) -> str:
    return key if isinstance(key, str) else " x ".join(key)


def _listed(values: Sequence[Any]) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:_MAX_LISTED])
    more = len(values) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


def _as_series(key: MarginKey, spec: Any) -> pd.Series:
    if isinstance(spec, pd.Series):
        s = spec.copy()
    elif isinstance(spec, Mapping):
        keys = list(spec.keys())
        if not isinstance(key, str) and keys and all(isinstance(k, tuple) for k in keys):
            index: pd.Index = pd.MultiIndex.from_tuples(keys)
        else:
            index = pd.Index(keys, dtype=object)
        s = pd.Series(list(spec.values()), index=index, dtype=float)
    else:
        raise ConfigError(
            "A categorical margin must map categories to population totals",
            param=_margin_name(key),
            expected="a mapping {category: total} or a pandas Series",
            found=type(spec).__name__,
        )
    s = s.astype(float)
    if not np.all(np.isfinite(s.to_numpy())) or (s < 0).any():
        raise ConfigError(
            "Population totals must be finite and non-negative",
            param=_margin_name(key),
            expected="totals >= 0",
            found=_listed([f"{k}: {v}" for k, v in s.items() if not (np.isfinite(v) and v >= 0)]),
        )
    return s


def _factorize(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of a column (-1 = missing) and the values they index.

    A categorical column keeps its declared categories (used or not); any other column is
    factorised once (values in order of first appearance).  Every later step works on the
    codes and on the few distinct values, never on the rows' objects again.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        return np.asarray(col.cat.codes, dtype=np.intp), pd.Index(col.cat.categories)
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.intp), pd.Index(uniques)


def _encode(
    df: pd.DataFrame,
    key: MarginKey,
    pop: pd.Series,
    cache: dict[str, tuple[np.ndarray, pd.Index]] | None = None,
) -> tuple[np.ndarray, list[Any], set[Any]]:
    """Return row codes against ``pop.index`` (-1 = not in margin), and declared/observed labels.

    Each column is factorised once (``cache`` keeps the factorisation for the other margins
    that use it); the values are then matched against the margin's categories on the few
    distinct values only, which gives the same codes as matching every row.
    """
    columns = (key,) if isinstance(key, str) else tuple(key)
    cache = {} if cache is None else cache
    for c in columns:
        if c not in df.columns:
            raise ConfigError(
                "A margin names a column that is not in the data",
                param=_margin_name(key),
                column=c,
                expected=f"one of the data columns: {_listed(list(df.columns))}",
                found=repr(c),
            )
        if c not in cache:
            cache[c] = _factorize(df[c])
        codes_c = cache[c][0]
        if (codes_c < 0).any():
            miss = codes_c < 0
            raise DataValidationError(
                "A weighting variable has missing values",
                column=c,
                row=int(np.flatnonzero(miss)[0]) + 1,
                expected="a category for every respondent",
                found=f"{int(miss.sum())} missing value(s)",
                hint="impute or drop these respondents, or add an explicit 'unknown' category "
                "to the data and to the margins",
            )
    if len(columns) == 1:
        codes_c, values = cache[columns[0]]
        lookup = np.asarray(pop.index.get_indexer(values), dtype=np.intp)
        return lookup[codes_c], [pop.index], set(values)
    if not isinstance(pop.index, pd.MultiIndex) or pop.index.nlevels != len(columns):
        raise ConfigError(
            "A joint margin needs one category per column in every key",
            param=_margin_name(key),
            expected=f"keys that are tuples of {len(columns)} values",
            found=_listed(list(pop.index)[:3]),
        )
    # the observed combinations of the columns' codes, matched against the margin's tuples
    parts = [cache[c] for c in columns]
    if float(np.prod([max(len(v), 1) for _, v in parts], dtype=float)) > 2.0**62:
        mi = pd.MultiIndex.from_arrays([df[c].to_numpy() for c in columns])
        codes = np.asarray(pop.index.get_indexer(mi), dtype=np.intp)
        return codes, [pop.index], {(lv, v) for lv, (_, vals) in enumerate(parts) for v in vals}
    combined = np.zeros(len(df), dtype=np.int64)
    for codes_c, values in parts:
        combined = combined * max(len(values), 1) + codes_c
    combos, inverse = np.unique(combined, return_inverse=True)
    digits = []
    rest = combos
    for _, values in reversed(parts):
        k = max(len(values), 1)
        digits.append(rest % k)
        rest = rest // k
    digits.reverse()
    mi = pd.MultiIndex.from_arrays(
        [values.take(d) for (_, values), d in zip(parts, digits, strict=True)]
    )
    lookup = np.asarray(pop.index.get_indexer(mi), dtype=np.intp)
    codes = lookup[np.asarray(inverse, dtype=np.intp).ravel()]
    known = set()
    for level, (_, values) in enumerate(parts):
        known |= {(level, v) for v in values}
    return codes, [pop.index], known


def _check_labels(
    df: pd.DataFrame, key: MarginKey, pop: pd.Series, codes: np.ndarray, known: set[Any]
) -> np.ndarray:
    """Raise on sample categories missing from the margin and on unknown margin categories.

    Returns a boolean mask over ``pop`` of cells that are genuine empty cells (collapsible).
    """
    name = _margin_name(key)
    columns = (key,) if isinstance(key, str) else tuple(key)
    if (codes < 0).any():
        missing: Sequence[Any]
        if len(columns) == 1:
            missing = list(pd.unique(df[columns[0]].to_numpy()[codes < 0]))
        else:
            rows = np.flatnonzero(codes < 0)
            missing = list(
                pd.unique(
                    pd.Series(list(zip(*(df[c].to_numpy()[rows] for c in columns), strict=True)))
                )
            )
        raise DataValidationError(
            f"Sample categories of '{name}' are absent from the population margin",
            column=name,
            expected=f"categories among the margin's: {_listed([_label(v) for v in pop.index])}",
            found=f"sample categories without a population total: {_listed([_label(v) for v in missing])}",
            hint="add these categories (with their totals) to the margin, or recode the sample",
        )
    counts = np.bincount(codes, minlength=len(pop))
    empty = counts == 0
    unknown: list[str] = []
    for i in np.flatnonzero(empty):
        cell = pop.index[int(i)]
        if len(columns) == 1:
            ok = cell in known
        else:
            ok = all((level, v) in known for level, v in enumerate(cell))
        if not ok and pop.iloc[i] > 0:
            unknown.append(_label(cell))
    if unknown:
        raise ConfigError(
            f"Margin categories of '{name}' are absent from the sample",
            param=name,
            expected=f"categories that occur in the sample column(s) {', '.join(columns)}",
            found=f"margin categories never seen in the sample: {_listed(unknown)}",
            hint="check the spelling and type of the categories (e.g. 'Yes' vs 'yes', 1 vs '1'); "
            "a genuine empty cell must be a declared category of a pandas Categorical column",
        )
    return empty


def _collapse(
    name: str,
    labels: list[str],
    totals: np.ndarray,
    counts: np.ndarray,
    min_cell: int,
    strata: Sequence[Any] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[CollapseRecord]]:
    """Apply the adjacent-merge rule; return new labels, totals, counts, old->new map, records.

    ``strata`` (for a joint margin: the value of its first variable per cell) confines merges to
    cells of the same stratum: a POP cell is never merged with a non-POP cell of ``pop x educ``.
    A sparse stratum that is a single cell cannot be collapsed and raises an error.
    """
    groups: list[list[int]] = [[i] for i in range(len(labels))]
    g_counts = [int(c) for c in counts]
    g_totals = [float(t) for t in totals]
    g_strata = list(strata) if strata is not None else [None] * len(labels)
    records: list[CollapseRecord] = []
    while len(groups) > 1:
        small = [i for i, c in enumerate(g_counts) if c < min_cell]
        if not small:
            break
        i = min(small, key=lambda j: (g_counts[j], j))
        nbrs = [j for j in (i - 1, i + 1) if 0 <= j < len(groups) and g_strata[j] == g_strata[i]]
        if not nbrs:
            raise DataValidationError(
                f"Margin '{name}' has a sparse cell that cannot be merged within its stratum",
                column=name,
                expected=f"at least {min_cell} respondent(s) per cell, or a neighbouring cell of the same stratum",
                found=f"{'+'.join(labels[k] for k in groups[i])} ({g_counts[i]} respondents)",
                hint="cells of a joint margin are merged only within the categories of its first "
                "variable; drop the joint margin, use a coarser one, or lower weighting.min_cell",
            )
        j = min(nbrs, key=lambda x: (g_counts[x], x))
        a, b = min(i, j), max(i, j)
        merged_labels = tuple("+".join(labels[k] for k in groups[x]) for x in (a, b))
        reason = "empty" if min(g_counts[a], g_counts[b]) == 0 else "sparse"
        record = CollapseRecord(
            margin=name,
            merged=merged_labels,
            label="+".join(merged_labels),
            respondents=(g_counts[a], g_counts[b]),
            reason=reason,
        )
        records.append(record)
        logger.warning(
            "margin %r: %s cell merged with its neighbour: %s (respondents %s) -> %r",
            name,
            reason,
            " and ".join(repr(m) for m in merged_labels),
            "/".join(str(c) for c in record.respondents),
            record.label,
        )
        groups[a] = groups[a] + groups[b]
        g_counts[a] += g_counts[b]
        g_totals[a] += g_totals[b]
        del groups[b], g_counts[b], g_totals[b], g_strata[b]
    mapping = np.empty(len(labels), dtype=np.intp)
    for new, members in enumerate(groups):
        mapping[members] = new
    new_labels = ["+".join(labels[k] for k in g) for g in groups]
    return new_labels, np.asarray(g_totals), np.asarray(g_counts), mapping, records


def prepare_margins(
    df: pd.DataFrame,
    margins: MarginSpec,
    *,
    min_cell: int = 1,
    collapse: bool = True,
    allow_numeric: bool = False,
) -> tuple[list[Margin], dict[str, tuple[str, float]], list[CollapseRecord]]:
    """Encode margins against the sample, check them and collapse empty/sparse cells.

    Parameters
    ----------
    df
        The sample.
    margins
        ``{column or (col1, col2): {category: population total}}``; with ``allow_numeric``
        a value may also be a number, the population total of a numeric column.
    min_cell
        Cells with fewer respondents than this are sparse and are collapsed.
    collapse
        Apply the collapse rule; if False, empty or sparse cells raise a ``DataValidationError``.
    allow_numeric
        Accept numeric totals (calibration only).

    Returns
    -------
    categorical margins, numeric totals ``{name: (column, total)}``, collapse records
    """
    if not isinstance(margins, Mapping) or len(margins) == 0:
        raise ConfigError(
            "No margins given",
            param="margins",
            expected="a non-empty mapping {column: {category: population total}}",
            found=repr(margins),
        )
    if isinstance(min_cell, bool) or not isinstance(min_cell, int | np.integer) or min_cell < 1:
        raise ConfigError(
            "min_cell must be a positive integer",
            param="min_cell",
            expected="an integer >= 1",
            found=repr(min_cell),
        )
    out: list[Margin] = []
    numeric: dict[str, tuple[str, float]] = {}
    records: list[CollapseRecord] = []
    factorised: dict[str, tuple[np.ndarray, pd.Index]] = {}
    for key, spec in margins.items():
        if isinstance(key, list):
            key = tuple(key)
        name = _margin_name(key)
        if isinstance(spec, int | float | np.number) and not isinstance(spec, bool):
            if not allow_numeric:
                raise ConfigError(
                    "Numeric totals are only allowed in calibrate()",
                    param=name,
                    expected="a mapping {category: population total}",
                    found=repr(spec),
                    hint="use calibrate(design, margins) for numeric totals",
                )
            if not isinstance(key, str) or key not in df.columns:
                raise ConfigError(
                    "A numeric total names a column that is not in the data",
                    param=name,
                    expected="a numeric data column",
                    found=repr(key),
                )
            if not pd.api.types.is_numeric_dtype(df[key]) or df[key].isna().any():
                raise DataValidationError(
                    "A numeric calibration variable must be numeric without missing values",
                    column=key,
                    expected="numbers for every respondent",
                    found=f"dtype {df[key].dtype}, {int(df[key].isna().sum())} missing",
                )
            numeric[name] = (key, float(spec))
            continue
        pop = _as_series(key, spec)
        if pop.index.has_duplicates:
            raise ConfigError(
                "A margin lists a category twice",
                param=name,
                found=_listed([_label(v) for v in pop.index[pop.index.duplicated()]]),
            )
        codes, _, known = _encode(df, key, pop, factorised)
        empty = _check_labels(df, key, pop, codes, known)
        counts = np.bincount(codes, minlength=len(pop))
        # cells empty in both sample and population are dropped (as R's postStratify does)
        keep = ~(empty & (pop.to_numpy() == 0))
        zero_pop = (pop.to_numpy() == 0) & ~empty
        if zero_pop.any():
            raise DataValidationError(
                f"Sample categories of '{name}' have a population total of zero",
                column=name,
                expected="a positive population total for every category with respondents",
                found=_listed([_label(v) for v in pop.index[zero_pop]]),
                hint="respondents cannot represent an empty population cell: recode them or "
                "correct the margin",
            )
        labels = [_label(v) for v in pop.index[keep]]
        strata = [v[0] for v in pop.index[keep]] if not isinstance(key, str) else None
        totals = pop.to_numpy()[keep]
        counts = counts[keep]
        remap = np.cumsum(keep) - 1
        codes = remap[codes]
        if (counts < min_cell).any():
            if not collapse:
                bad = [
                    f"{lab} ({c})" for lab, c in zip(labels, counts, strict=True) if c < min_cell
                ]
                raise DataValidationError(
                    f"Margin '{name}' has empty or sparse cells",
                    column=name,
                    expected=f"at least {min_cell} respondent(s) per cell",
                    found=_listed(bad),
                    hint="pass collapse=True to merge them with adjacent cells",
                )
            labels, totals, counts, mapping, recs = _collapse(
                name, labels, totals, counts, min_cell, strata
            )
            codes = mapping[codes]
            records.extend(recs)
        columns = (key,) if isinstance(key, str) else tuple(key)
        out.append(
            Margin(
                name=name,
                columns=columns,
                labels=tuple(labels),
                codes=np.ascontiguousarray(codes, dtype=np.intp),
                totals=np.asarray(totals, dtype=float),
                counts=np.asarray(counts, dtype=np.int64),
            )
        )
    return out, numeric, records
