"""The population profile (the study's quantitative part), as tidy tables with small-cell suppression.

All counts concern **approved** applications in the study window.

``pop_share``
    Per incentive (OC, VOV, VAPOK): approved applications, POP-based ones and their share (unit
    ``applications``); and loopbaancheque users (unit ``persons``: persons with a VDAB trajectory),
    those with an approved POP-based application (any incentive) on or after the start of one of their
    trajectories, and their share.
``composition``
    POP-based users (persons with an approved POP-based application of any incentive) against all
    incentive users (persons with any approved application), by education, age band, sector, sex and
    company size.  A person's characteristics come from their latest approved application (latest
    ``application_date``, ties: largest ``application_id``); column percentages.
``domains``
    The top training domains of approved POP-based applications inside and outside the
    opleidingsdatabank, with counts, percentages within the group and rank.
``outside_databank``
    Per incentive and overall: approved POP-based applications, those outside the databank and the
    share outside.

Counts go through :func:`analysis.disclosure.suppress` (threshold configurable, default 5), and a
percentage is missing wherever its count is suppressed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analysis.population._db import DEFAULT_DB, Progress, connect, progress_printer, require_table

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

__all__ = ["PROFILE_VARIABLES", "Profile", "profile"]

#: Characteristics in the composition table.
PROFILE_VARIABLES: tuple[str, ...] = ("educ", "age_band", "sector", "sex", "company_size")
_INCENTIVES = ("OC", "VOV", "VAPOK")


@dataclass(frozen=True)
class Profile:
    """The population profile tables (after suppression).

    Attributes
    ----------
    pop_share, composition, domains, outside_databank
        See the module docstring.
    threshold
        The suppression threshold used.
    school_years
        The study window.
    suppressed_cells
        Number of suppressed counts over all tables.
    """

    pop_share: pd.DataFrame
    composition: pd.DataFrame
    domains: pd.DataFrame
    outside_databank: pd.DataFrame
    threshold: int
    school_years: tuple[str, ...]
    suppressed_cells: int

    def summary(self) -> str:
        """A short printable summary."""
        lines = [f"Population profile (school years {self.school_years[0]} to {self.school_years[-1]}; "
                 f"cells below {self.threshold} suppressed: {self.suppressed_cells})"]
        for r in self.pop_share.itertuples(index=False):
            pct = "suppressed" if _isna(r.pct_pop) else f"{r.pct_pop:.1f}%"
            lines.append(f"  POP-based {r.incentive:<6} {pct:>11}  of {r.total:,} {r.unit}")
        tot = self.outside_databank[self.outside_databank["incentive"] == "all"]
        if len(tot) and not _isna(tot["pct_outside"].iloc[0]):
            lines.append(f"  POP-based approvals outside the databank: {tot['pct_outside'].iloc[0]:.1f}%")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """All tables stacked, with a ``table`` column naming each."""
        import pandas as pd

        parts = [
            t.assign(table=name)
            for name, t in (
                ("pop_share", self.pop_share),
                ("composition", self.composition),
                ("domains", self.domains),
                ("outside_databank", self.outside_databank),
            )
        ]
        out = pd.concat(parts, ignore_index=True, sort=False)
        return out[["table", *[c for c in out.columns if c != "table"]]]


def _isna(x: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(x))


def profile(
    db: Any = DEFAULT_DB,
    *,
    threshold: int = 5,
    school_years: Sequence[str] | None = None,
    top: int = 5,
    progress: Progress = None,
) -> Profile:
    """Compute the population profile from the study database.

    Parameters
    ----------
    db
        The DuckDB file written by ``popeval ingest`` (or an open connection).
    threshold
        Small-cell suppression threshold (counts ``0 < n < threshold`` suppressed, plus complements).
    school_years
        The study window (default: all school years of the data model).
    top
        Number of training domains listed per databank group.
    progress
        A line per stage: a callable taking the line, True (standard error), False (quiet) or None
        (standard error when it is a terminal, quiet otherwise).

    Returns
    -------
    Profile
    """
    from analysis.population.linkage import school_year_window

    years = school_year_window(school_years)
    say = progress_printer(progress, "profile")
    with connect(db, read_only=False) as con:
        require_table(con, "dwse_applications", "run `popeval ingest` first")
        require_table(con, "vdab_trajectories", "run `popeval ingest` first")
        con.execute("CREATE OR REPLACE TEMP TABLE _pw AS SELECT unnest(?::VARCHAR[]) AS school_year", [list(years)])
        # the approved applications in the window: a view (each table scans it; nothing is copied)
        con.execute(
            "CREATE OR REPLACE TEMP VIEW _approved AS SELECT a.* FROM dwse_applications a SEMI JOIN _pw USING (school_year) "
            "WHERE a.status = 'goedgekeurd'"
        )
        share = _pop_share(con)
        say("POP shares counted")
        comp = _composition(con)
        say("composition counted")
        dom_wide = _domains(con)
        outside = _outside(con)
        say("training domains counted")
    return _assemble(share, comp, dom_wide, outside, threshold, years, top)


def _pop_share(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    import pandas as pd

    apps = con.execute(
        "SELECT incentive, count(*) FILTER (WHERE pop_based), count(*) FROM _approved GROUP BY incentive"
    ).fetchall()
    by = {r[0]: (int(r[1]), int(r[2])) for r in apps}
    rows = [("applications", inc, *by.get(inc, (0, 0))) for inc in _INCENTIVES]
    lbc = con.execute(
        """
        -- a POP-based approval on or after the start of one of the person's trajectories exists
        -- exactly when the latest such approval is on or after the first start
        WITH users AS (SELECT person_key, min(start_date) AS first_start FROM vdab_trajectories GROUP BY person_key),
             pop AS (SELECT person_key, max(application_date) AS last_pop FROM _approved WHERE pop_based GROUP BY person_key)
        SELECT count(*) FILTER (WHERE pop.last_pop >= users.first_start), count(*)
        FROM users LEFT JOIN pop USING (person_key)
        """
    ).fetchall()[0]
    rows.append(("persons", "LBC", int(lbc[0]), int(lbc[1])))
    df = pd.DataFrame(rows, columns=["unit", "incentive", "pop_based", "total"])
    df["not_pop_based"] = df["total"] - df["pop_based"]
    return df


def _composition(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    import pandas as pd

    from survey.datamodel import age_band

    ages = pd.DataFrame({"age": range(0, 131)})
    ages["band"] = [age_band(a) for a in ages["age"]]
    con.register("_profile_ages", ages)
    try:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _persons AS
            WITH persons AS (
                -- one hash aggregate per person, its state a few numbers; the latest application
                -- is the largest (application_date, application_id) pair
                SELECT person_key, bool_or(pop_based) AS pop_user,
                       max({'d': application_date, 'i': application_id}).i AS latest_id
                FROM _approved GROUP BY person_key
            )
            SELECT p.person_key, p.pop_user, l.educ, b.band AS age_band, l.sector, l.sex, l.company_size
            FROM persons p
            JOIN _approved l ON l.application_id = p.latest_id
            JOIN _profile_ages b ON b.age = greatest(0, least(130, year(l.application_date) - l.birth_year))
            """
        )
    finally:
        con.unregister("_profile_ages")
    parts = []
    from analysis.population.margins import vocabulary

    for var in PROFILE_VARIABLES:
        got = con.execute(
            f'SELECT "{var}", count(*) FILTER (WHERE pop_user), count(*) FROM _persons GROUP BY ALL'
        ).fetchall()
        by = {r[0]: (int(r[1]), int(r[2])) for r in got}
        for cat in vocabulary(var):
            p, a = by.get(cat, (0, 0))
            parts.append((var, cat, p, a))
    return pd.DataFrame(parts, columns=["variable", "category", "pop_users", "all_users"])


def _domains(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    import pandas as pd

    from survey.datamodel import TRAINING_DOMAINS, codes

    got = con.execute(
        "SELECT training_domain, count(*) FILTER (WHERE in_databank), count(*) FILTER (WHERE NOT in_databank) "
        "FROM _approved WHERE pop_based GROUP BY training_domain"
    ).fetchall()
    by = {r[0]: (int(r[1]), int(r[2])) for r in got}
    rows = [(d, *by.get(d, (0, 0))) for d in codes(TRAINING_DOMAINS)]
    return pd.DataFrame(rows, columns=["training_domain", "inside", "outside"])


def _outside(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    import pandas as pd

    got = con.execute(
        "SELECT incentive, count(*) FILTER (WHERE NOT in_databank), count(*) FILTER (WHERE in_databank) "
        "FROM _approved WHERE pop_based GROUP BY incentive"
    ).fetchall()
    by = {r[0]: (int(r[1]), int(r[2])) for r in got}
    rows = [(inc, *by.get(inc, (0, 0))) for inc in _INCENTIVES]
    return pd.DataFrame(rows, columns=["incentive", "outside", "inside"])


def _pct(num: pd.Series, den: Any) -> pd.Series:
    import numpy as np

    num = num.astype("Float64")
    den_arr = np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den_arr * 100.0
    return out.where(den_arr > 0)


def _assemble(
    share: pd.DataFrame,
    comp: pd.DataFrame,
    dom: pd.DataFrame,
    outside: pd.DataFrame,
    threshold: int,
    years: tuple[str, ...],
    top: int,
) -> Profile:
    import pandas as pd

    from analysis.disclosure import suppress

    n_sup = 0
    # POP share: cells POP / not POP, row total = all approved (published)
    share["pct_pop"] = _pct(share["pop_based"], share["total"])
    s = suppress(share, ["pop_based", "not_pop_based"], threshold, by="unit", pct_cols={"pct_pop": "pop_based"})
    n_sup += int(s.mask.to_numpy().sum())
    pop_share = s.table[["unit", "incentive", "total", "pop_based", "not_pop_based", "pct_pop"]]

    # composition: column totals per variable (the group sizes) are published
    comp_tot = comp.groupby("variable", sort=False)[["pop_users", "all_users"]].transform("sum")
    comp["pct_pop_users"] = _pct(comp["pop_users"], comp_tot["pop_users"])
    comp["pct_all_users"] = _pct(comp["all_users"], comp_tot["all_users"])
    c = suppress(
        comp,
        ["pop_users", "all_users"],
        threshold,
        by="variable",
        row_totals=False,
        pct_cols={"pct_pop_users": "pop_users", "pct_all_users": "all_users"},
    )
    n_sup += int(c.mask.to_numpy().sum())
    composition = c.table

    # domains: inside/outside x domain, margins published
    d = suppress(dom, ["inside", "outside"], threshold)
    n_sup += int(d.mask.to_numpy().sum())
    tidy = []
    for group in ("inside", "outside"):
        total = int(dom[group].sum())
        g = d.table[["training_domain", group]].rename(columns={group: "count"})
        g = g.assign(databank=group, pct=_pct(g["count"], [total] * len(g)))
        g = g.sort_values("count", ascending=False, na_position="last", kind="stable").head(top)
        g["rank"] = range(1, len(g) + 1)
        tidy.append(g)
    domains = pd.concat(tidy, ignore_index=True)[["databank", "rank", "training_domain", "count", "pct"]]

    # outside the databank: per incentive plus overall
    total_row = pd.DataFrame({"incentive": ["all"], "outside": [outside["outside"].sum()], "inside": [outside["inside"].sum()]})
    out = pd.concat([outside, total_row], ignore_index=True)
    out["pop_based"] = out["outside"] + out["inside"]
    out["pct_outside"] = _pct(out["outside"], out["pop_based"])
    o_main = suppress(out.iloc[:-1], ["outside", "inside"], threshold, pct_cols={"pct_outside": "outside"})
    n_sup += int(o_main.mask.to_numpy().sum())
    o_all = suppress(out.iloc[-1:], ["outside", "inside"], threshold, pct_cols={"pct_outside": "outside"})
    outside_databank = pd.concat([o_main.table, o_all.table], ignore_index=True)[
        ["incentive", "pop_based", "outside", "inside", "pct_outside"]
    ]
    return Profile(
        pop_share=pop_share.reset_index(drop=True),
        composition=composition.reset_index(drop=True),
        domains=domains,
        outside_databank=outside_databank,
        threshold=int(threshold),
        school_years=years,
        suppressed_cells=n_sup,
    )
