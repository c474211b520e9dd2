"""Population margins for weighting the survey: counts per category and cross-classification.

:func:`margins` counts the study population (the ``population`` table of the study database, or a
frame with its columns) per category of each requested variable and per cell of each requested
cross-classification.  Every category of the data model's vocabulary is listed, empty ones with count
0, so that a weighting step sees empty population cells explicitly.

The result is *versioned*: :attr:`Margins.version` is a hash of the ingested source files' SHA-256
(``ingest_sources``), the specification and the counts themselves; the same inputs give the same
version, any change gives another.  :attr:`Margins.totals` is the ``{variable: {category: total}}``
mapping (a tuple of variables for a joint margin, with tuple categories) that
:func:`analysis.weighting.rake` takes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from analysis.population._db import Progress, progress_printer
from analysis.population.linkage import CHARACTERISTICS
from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["DEFAULT_MARGINS", "Margins", "margins", "vocabulary"]

MarginKey = str | tuple[str, ...]

#: Margins used to weight the survey unless told otherwise.
DEFAULT_MARGINS: tuple[MarginKey, ...] = (
    "pop",
    "sex",
    "age_band",
    "educ",
    "sector",
    "company_size",
    "province",
    ("pop", "educ"),
    ("age_band", "sex"),
)

_BOOL_VARS = ("pop", "had_guidance", "pop_made", "pop_attest", "attest_matches_training", "guidance_before_training", "invited")


def vocabulary(variable: str) -> list[Any]:
    """The categories of a population variable, in the data model's order."""
    from survey.datamodel import AGE_BANDS, DWSE_APPLICATIONS, codes

    if variable in _BOOL_VARS:
        return [False, True]
    if variable == "age_band":
        return codes(AGE_BANDS)
    if variable in CHARACTERISTICS:
        return codes(DWSE_APPLICATIONS.column(variable).vocabulary or ())
    raise ConfigError(
        "Unknown margin variable",
        param="spec",
        expected="one of " + ", ".join((*CHARACTERISTICS, *_BOOL_VARS)),
        found=repr(variable),
        hint="margins are defined on the population's harmonised characteristics and flags",
    )


@dataclass(frozen=True)
class Margins:
    """Versioned population margins.

    Attributes
    ----------
    table
        Tidy counts: ``margin`` (e.g. ``'pop x educ'``), ``variables`` (comma-separated), ``category``
        (categories joined by ``' x '``), ``count``.
    totals
        ``{variable: {category: count}}``; joint margins keyed by a tuple of variables with tuple
        categories.  Ready for ``rake()``.
    population
        Number of persons counted.
    version
        ``'pm-'`` plus 16 hex digits of a SHA-256 over the sources, the specification and the counts.
    sources
        ``(table, file name, sha256)`` of the ingested extracts (empty for a frame input).
    spec
        The margins requested.
    """

    table: pd.DataFrame
    totals: Mapping[MarginKey, Mapping[Any, int]]
    population: int
    version: str
    sources: tuple[tuple[str, str, str], ...]
    spec: tuple[MarginKey, ...]

    def summary(self) -> str:
        """A short printable summary."""
        lines = [f"Population margins {self.version}: {self.population:,} persons, {len(self.spec)} margins"]
        for key in self.spec:
            cells = self.totals[key]
            empty = sum(1 for v in cells.values() if v == 0)
            name = key if isinstance(key, str) else " x ".join(key)
            lines.append(f"  {name:<24} {len(cells):>3} cells" + (f" ({empty} empty)" if empty else ""))
        for table, name, sha in self.sources:
            lines.append(f"  source {table}: {name} (sha256 {sha[:12]})")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The tidy table with the version in every row."""
        return self.table.assign(version=self.version)


def margins(con_or_population: Any, spec: Sequence[MarginKey] = DEFAULT_MARGINS, *, progress: Progress = None) -> Margins:
    """Count the study population per margin.

    Parameters
    ----------
    con_or_population
        The study database (path or open DuckDB connection holding ``population``), or a population
        frame (as from :func:`~analysis.population.load_population`).
    spec
        Variables and tuples of variables (joint margins), e.g. ``["sex", ("pop", "educ")]``.
    progress
        A line when done: a callable taking the line, True (standard error), False (quiet) or None
        (standard error when it is a terminal, quiet otherwise).

    Returns
    -------
    Margins
    """
    import pandas as pd

    keys = _normalise_spec(spec)
    variables = sorted({v for k in keys for v in ((k,) if isinstance(k, str) else k)})
    if isinstance(con_or_population, pd.DataFrame):
        frame = con_or_population
        missing = [v for v in variables if v not in frame.columns]
        if missing:
            raise ConfigError(
                "The population frame lacks a margin variable",
                column=missing[0],
                expected="columns " + ", ".join(variables),
                found="columns " + ", ".join(map(str, frame.columns)),
            )
        counts = {k: _count_frame(frame, k) for k in keys}
        n = len(frame)
        sources: tuple[tuple[str, str, str], ...] = ()
    else:
        from analysis.population._db import connect, has_table, require_table

        read_only = isinstance(con_or_population, str | Path)
        with connect(con_or_population, read_only=read_only) as con:
            require_table(con, "population", "run `popeval ingest` (which links the population) first")
            counts = {k: _count_sql(con, k) for k in keys}
            n = int(con.execute("SELECT count(*) FROM population").fetchall()[0][0])
            sources = ()
            if has_table(con, "ingest_sources"):
                sources = tuple(
                    (str(t), str(f), str(s))
                    for t, f, s in con.execute("SELECT table_name, file_name, sha256 FROM ingest_sources ORDER BY table_name").fetchall()
                )
    rows = []
    totals: dict[MarginKey, Mapping[Any, int]] = {}
    for key in keys:
        cols = (key,) if isinstance(key, str) else key
        observed = counts[key]
        cells = list(itertools.product(*(vocabulary(c) for c in cols)))
        unknown = [c for c in observed if c not in set(cells)]
        if unknown:
            raise ConfigError(
                "A population variable holds a value outside the data model",
                param=" x ".join(cols),
                expected="categories " + ", ".join(map(str, cells[:12])),
                found=", ".join(map(str, unknown[:5])),
                hint="re-run ingest; the population table may come from an older version",
            )
        tot = {(cell[0] if isinstance(key, str) else cell): int(observed.get(cell, 0)) for cell in cells}
        totals[key] = MappingProxyType(tot)
        name = " x ".join(cols)
        for cell in cells:
            rows.append((name, ",".join(cols), " x ".join(map(str, cell)), int(observed.get(cell, 0))))
    table = pd.DataFrame(rows, columns=["margin", "variables", "category", "count"])
    payload = json.dumps(
        {"sources": sources, "spec": [list(k) if isinstance(k, tuple) else k for k in keys], "counts": rows},
        sort_keys=True,
        default=str,
    )
    version = "pm-" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
    progress_printer(progress, "margins")(f"{len(keys)} margins of {n:,} persons counted ({version})")
    return Margins(
        table=table, totals=MappingProxyType(totals), population=n, version=version, sources=sources, spec=keys
    )


def _normalise_spec(spec: Sequence[MarginKey]) -> tuple[MarginKey, ...]:
    if isinstance(spec, str) or not isinstance(spec, Sequence) or len(spec) == 0:
        raise ConfigError(
            "Margins must be a non-empty list of variables or tuples of variables",
            param="spec",
            expected="e.g. ['sex', 'age_band', ('pop', 'educ')]",
            found=repr(spec),
        )
    out: list[MarginKey] = []
    for k in spec:
        key: MarginKey = k if isinstance(k, str) else tuple(k)
        for v in (key,) if isinstance(key, str) else key:
            vocabulary(v)
        if key in out:
            raise ConfigError("A margin is listed twice", param="spec", expected="each margin once", found=repr(key))
        out.append(key)
    return tuple(out)


def _count_frame(frame: pd.DataFrame, key: MarginKey) -> dict[tuple[Any, ...], int]:
    cols = [key] if isinstance(key, str) else list(key)
    sub = frame[cols]
    if sub.isna().any().any():
        col = next(c for c in cols if sub[c].isna().any())
        raise ConfigError(
            "A margin variable has missing values in the population",
            column=col,
            expected="a category for every person",
            found=f"{int(sub[col].isna().sum())} missing",
        )
    g = sub.astype(object).value_counts(sort=False)
    return {tuple(_py(x) for x in (idx if isinstance(idx, tuple) else (idx,))): int(n) for idx, n in g.items()}


def _count_sql(con: Any, key: MarginKey) -> dict[tuple[Any, ...], int]:
    cols = [key] if isinstance(key, str) else list(key)
    sel = ", ".join(f'"{c}"' for c in cols)
    rows = con.execute(f"SELECT {sel}, count(*) FROM population GROUP BY ALL").fetchall()
    out = {}
    for r in rows:
        if any(x is None for x in r[:-1]):
            raise ConfigError(
                "A margin variable has missing values in the population",
                param=" x ".join(cols),
                expected="a category for every person",
                found=f"{int(r[-1])} persons without a value",
            )
        out[tuple(r[:-1])] = int(r[-1])
    return out


def _py(x: Any) -> Any:
    import numpy as np

    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.generic):
        return x.item()
    return x
