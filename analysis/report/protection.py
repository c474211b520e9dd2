"""Disclosure control of the report's tables: counts below the threshold and what would reveal them.

:func:`protect` suppresses the confidential counts of a table with :func:`analysis.disclosure.suppress`
(primary and secondary suppression), then parts whose complement is confidential, and the columns
derived from a suppressed count with it.  The result, :class:`Protected`, keeps the values and a mask
of the suppressed cells; the report shows those as :data:`analysis.report.formatting.SUPPRESSED`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["DEFAULT_THRESHOLD", "Protected", "protect", "threshold_from_manifest"]

#: The disclosure threshold when neither the caller nor the bundle sets one: counts below 5 are suppressed.
DEFAULT_THRESHOLD = 5


@dataclass(frozen=True)
class Protected:
    """A table after disclosure control: the values and a mask of suppressed cells."""

    table: pd.DataFrame
    suppressed: pd.DataFrame

    def is_suppressed(self, row: Any, column: str) -> bool:
        """Whether the cell (row label, column) is suppressed."""
        return column in self.suppressed.columns and bool(self.suppressed.at[row, column])

    @property
    def n_suppressed(self) -> int:
        """Number of suppressed cells."""
        return int(self.suppressed.to_numpy().sum())


def threshold_from_manifest(manifest: Mapping[str, Any], override: int | None = None) -> int:
    """The disclosure threshold: ``override``, else the bundle configuration's, else 5.

    Raises
    ------
    ConfigError
        For a threshold that is not a whole number of at least 1.
    """
    value: Any = override
    if value is None:
        value = ((manifest.get("config") or {}).get("disclosure") or {}).get("threshold", DEFAULT_THRESHOLD)
    try:
        ivalue = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError("Invalid disclosure threshold", param="disclosure.threshold", expected="a whole number >= 1 (default 5)", found=repr(value)) from exc
    if ivalue < 1 or ivalue != float(value):
        raise ConfigError("Invalid disclosure threshold", param="disclosure.threshold", expected="a whole number >= 1 (default 5)", found=repr(value))
    return ivalue


def _primary_and_secondary(df: pd.DataFrame, count_cols: Sequence[str], threshold: int, by: Sequence[str]) -> pd.DataFrame:
    """Suppression mask for ``count_cols`` by :func:`analysis.disclosure.suppress` (the one rule)."""
    from analysis.disclosure import suppress

    result = suppress(df, list(count_cols), threshold=threshold, by=list(by) or None, row_totals=False)
    return result.mask[list(count_cols)].reindex(df.index).fillna(False).astype(bool)


def protect(
    df: pd.DataFrame,
    count_cols: Sequence[str],
    threshold: int,
    *,
    by: Sequence[str] = (),
    derived: Mapping[str, Sequence[str]] | None = None,
    complements: Iterable[tuple[str, str]] = (),
) -> Protected:
    """Apply disclosure control to a (wide) table.

    Parameters
    ----------
    df
        The table, one row per cell group.
    count_cols
        Columns holding counts of units.
    threshold
        Counts ``0 < n < threshold`` are confidential.
    by
        Columns defining groups whose counts add up to a total (for secondary suppression).
    derived
        count column -> columns computed from it (percentages, estimates); suppressed with it.
    complements
        ``(part, total)`` pairs: a part is also suppressed when ``total - part`` is confidential.

    Returns
    -------
    Protected
        The table (unchanged values) and the suppression mask over all its columns.
    """
    import pandas as pd

    df = df.reset_index(drop=True)
    counts = df[list(count_cols)].apply(pd.to_numeric, errors="coerce")
    # a missing count was suppressed upstream: keep it suppressed and let secondary suppression account for it
    upstream = counts.isna()
    counts = counts.mask(upstream, 1)
    work = pd.concat([df.drop(columns=list(count_cols)), counts], axis=1)
    mask = _primary_and_secondary(work, count_cols, threshold, by)
    for part, total in complements:
        diff = work[total] - work[part]
        extra = (diff > 0) & (diff < threshold) & ~mask[part]
        if extra.any():
            mask[part] = mask[part] | extra
            work2 = work.copy()
            work2.loc[mask[part], part] = 0
            mask[part] = mask[part] | _secondary_only(work2, part, mask[part], by)
    full = pd.DataFrame(False, index=df.index, columns=df.columns)
    for c in count_cols:
        full[c] = mask[c] | upstream[c]
        for d in (derived or {}).get(c, ()):
            full[d] = full[d] | full[c]
    return Protected(table=df, suppressed=full)


def _secondary_only(df: pd.DataFrame, col: str, mask: pd.Series, by: Sequence[str]) -> pd.Series:
    mask = mask.copy()
    groups = [df.index] if not by else [idx for _, idx in df.groupby(list(by), sort=False).groups.items()]
    for group in groups:
        idx = list(group)
        while mask.loc[idx].sum() == 1 and len(idx) > 1:
            others = df.loc[idx, col][~mask.loc[idx]]
            if others.empty:
                break
            mask.loc[others.sort_values(kind="stable").index[0]] = True
    return mask
