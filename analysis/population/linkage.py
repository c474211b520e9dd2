"""Link persons across DWSE, VDAB and the survey's participants; build the study population.

The study population
--------------------
Opleidingscheque users: persons (``person_key``) with at least one *approved* opleidingscheque (OC)
application in the study window (school years, by default all of
:data:`survey.datamodel.SCHOOL_YEARS`).  A person is a **POP user** (``pop``) when at least one of
those approved OC applications is POP-based.

Harmonised characteristics
--------------------------
Characteristics are recorded per application and can differ between a person's applications.  The
rule: **take them from the person's latest approved OC application in the window** (latest
``application_date``, ties broken by the larger ``application_id``).  ``age`` is the calendar year of
that application minus ``birth_year``; ``age_band`` follows :func:`survey.datamodel.age_band`.  The
number of population persons whose DWSE applications (any incentive, any decision) disagree is counted
per variable in the :class:`LinkageReport`.

Loopbaancheque history (VDAB)
-----------------------------
``had_guidance`` (any trajectory), ``n_trajectories``, ``pop_made`` and ``pop_attest`` (on any
trajectory), ``attest_matches_training`` (the training named in a POP attest is the training of one of
the person's approved OC applications in the window) and ``guidance_before_training`` (a trajectory
started on or before the person's latest approved OC application).

Nothing is dropped silently: every DWSE person outside the population is counted by reason, every
VDAB person and every survey participant is counted as linked or unlinked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from analysis.population._db import DEFAULT_DB, Progress, connect, progress_printer, require_table
from survey.datamodel import SCHOOL_YEARS, age_band, codes
from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pandas as pd

__all__ = [
    "CHARACTERISTICS",
    "CONFLICT_RULE",
    "POPULATION_COLUMNS",
    "LinkageReport",
    "link",
    "load_population",
    "school_year_window",
]

#: Harmonised characteristics of a population person (survey categories).
CHARACTERISTICS: tuple[str, ...] = ("sex", "age_band", "educ", "sector", "nace", "company_size", "province", "statute")
#: Variables whose conflicts across a person's applications are counted.
_CONFLICT_VARS: tuple[str, ...] = ("sex", "birth_year", "educ", "nace", "sector", "company_size", "province", "statute")
#: The documented conflict-resolution rule.
CONFLICT_RULE = (
    "characteristics of the latest approved opleidingscheque application in the study window "
    "(latest application_date; ties: largest application_id)"
)
#: Columns of the ``population`` table.
POPULATION_COLUMNS: tuple[str, ...] = (
    "person_key",
    "pop",
    *CHARACTERISTICS,
    "birth_year",
    "age",
    "reference_application_id",
    "reference_date",
    "reference_school_year",
    "n_oc_applications",
    "n_pop_oc_applications",
    "first_oc_date",
    "first_pop_date",
    "had_guidance",
    "n_trajectories",
    "pop_made",
    "pop_attest",
    "attest_matches_training",
    "guidance_before_training",
    "invited",
    "tid",
)


@dataclass(frozen=True)
class LinkageReport:
    """Counts of the linkage; every person and record is accounted for.

    Attributes
    ----------
    school_years
        The study window.
    dwse_applications, dwse_persons
        Rows and distinct persons in the DWSE extract.
    population, pop_users
        Persons in the study population, and those with an approved POP-based OC application.
    oc_applications_in_population
        Approved OC applications in the window (the base of the population).
    persons_multiple_oc
        Population persons with more than one approved OC application in the window.
    excluded_no_oc, excluded_oc_refused, excluded_oc_outside_window
        DWSE persons not in the population because they have no OC application, only refused OC
        applications in the window, or approved OC applications only outside the window.
        ``population`` plus these three equals ``dwse_persons``.
    duplicate_applications
        Applications repeating another one of the same person (same incentive, training and date);
        kept and counted, not removed.
    vdab_trajectories, vdab_persons
        Rows and distinct persons in the VDAB extract.
    vdab_linked, vdab_dwse_only, vdab_unlinked
        VDAB persons in the population; in DWSE but not in the population; not in DWSE at all.
    persons_multiple_trajectories
        VDAB persons with more than one trajectory.
    participants, participants_linked, participants_unlinked
        Survey participant rows, and whether their ``attribute_1`` is a population person.
    participant_duplicate_keys
        Participant rows whose key already occurs on an earlier row (by ``tid``).
    population_invited
        Population persons with at least one participant row.
    conflicts
        Per variable, population persons whose DWSE applications disagree on it.
    resolution
        The rule used to resolve conflicts.
    """

    school_years: tuple[str, ...]
    dwse_applications: int
    dwse_persons: int
    population: int
    pop_users: int
    oc_applications_in_population: int
    persons_multiple_oc: int
    excluded_no_oc: int
    excluded_oc_refused: int
    excluded_oc_outside_window: int
    duplicate_applications: int
    vdab_trajectories: int
    vdab_persons: int
    vdab_linked: int
    vdab_dwse_only: int
    vdab_unlinked: int
    persons_multiple_trajectories: int
    participants: int
    participants_linked: int
    participants_unlinked: int
    participant_duplicate_keys: int
    population_invited: int
    conflicts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    resolution: str = CONFLICT_RULE

    _SECTIONS = (
        ("dwse", ("dwse_applications", "dwse_persons", "population", "pop_users", "oc_applications_in_population",
                  "persons_multiple_oc", "excluded_no_oc", "excluded_oc_refused", "excluded_oc_outside_window",
                  "duplicate_applications")),
        ("vdab", ("vdab_trajectories", "vdab_persons", "vdab_linked", "vdab_dwse_only", "vdab_unlinked",
                  "persons_multiple_trajectories")),
        ("survey", ("participants", "participants_linked", "participants_unlinked", "participant_duplicate_keys",
                    "population_invited")),
    )

    def to_frame(self) -> pd.DataFrame:
        """Tidy counts: ``section``, ``item``, ``count`` (conflicts as section ``conflicts``)."""
        import pandas as pd

        rows = [(sec, item, int(getattr(self, item))) for sec, items in self._SECTIONS for item in items]
        rows += [("conflicts", var, int(n)) for var, n in self.conflicts.items()]
        return pd.DataFrame(rows, columns=["section", "item", "count"])

    def summary(self) -> str:
        """A short printable summary."""
        pct = 100.0 * self.pop_users / self.population if self.population else float("nan")
        lines = [
            f"Study population (school years {self.school_years[0]} to {self.school_years[-1]}): "
            f"{self.population:,} opleidingscheque users, {self.pop_users:,} with POP ({pct:.1f}%)",
            f"  DWSE: {self.dwse_applications:,} applications of {self.dwse_persons:,} persons; outside the population: "
            f"{self.excluded_no_oc:,} without OC, {self.excluded_oc_refused:,} only refused, "
            f"{self.excluded_oc_outside_window:,} only outside the window; "
            f"{self.duplicate_applications:,} repeated applications (kept)",
            f"  VDAB: {self.vdab_trajectories:,} trajectories of {self.vdab_persons:,} persons; "
            f"{self.vdab_linked:,} in the population, {self.vdab_dwse_only:,} in DWSE only, {self.vdab_unlinked:,} unlinked",
            f"  survey: {self.participants:,} participants; {self.participants_linked:,} linked, "
            f"{self.participants_unlinked:,} unlinked, {self.participant_duplicate_keys:,} repeated keys; "
            f"{self.population_invited:,} population persons invited",
            "  conflicting characteristics (persons): "
            + (", ".join(f"{k} {v:,}" for k, v in self.conflicts.items()) or "none"),
            f"  resolved by: {self.resolution}",
        ]
        return "\n".join(lines)


def link(
    db: Any = DEFAULT_DB,
    participants: str | Path | pd.DataFrame | None = None,
    *,
    school_years: Sequence[str] | None = None,
    key_attribute: str = "attribute_1",
    pseudo_key: bytes | None = None,
    progress: Progress = None,
) -> LinkageReport:
    """Build the ``population`` table from the ingested extracts and link the survey participants.

    Parameters
    ----------
    db
        The DuckDB file written by :func:`~analysis.population.ingest` (or an open connection).
    participants
        The survey's participants: a snapshot folder or ``participants.json`` (read with
        :func:`survey.parse.read_participants`), a validated frame (``tid``, ``token``,
        ``attribute_1``), or None (no survey yet; survey counts are zero).
    school_years
        The study window as school years (``2021-22``; any years); default 2019-20 to 2023-24
        (:data:`survey.datamodel.SCHOOL_YEARS`).
    key_attribute, pseudo_key
        The participant attribute holding the person key; the key for pseudonymising raw INSZ in it
        (the same as the extracts'), see :func:`survey.parse.read_participants`.
    progress
        A line per stage: a callable taking the line, True (standard error), False (quiet) or None
        (standard error when it is a terminal, quiet otherwise).

    Returns
    -------
    LinkageReport
        Also stored in the database (table ``linkage_report``), next to ``population`` and
        ``survey_participants``.
    """
    years = school_year_window(school_years)
    say = progress_printer(progress, "link")
    part = _participants_frame(participants, key_attribute, pseudo_key)
    if part is not None:
        say(f"{len(part):,} survey participants read")
    with connect(db) as con:
        require_table(con, "dwse_applications", "run `popeval ingest` first")
        require_table(con, "vdab_trajectories", "run `popeval ingest` first")
        seen = [r[0] for r in con.execute("SELECT DISTINCT school_year FROM dwse_applications ORDER BY 1").fetchall()]
        if not set(years) & set(seen):
            raise ConfigError(
                "No application in the school years of the study window",
                param="school_years",
                expected="school years among those in the DWSE extract: " + ", ".join(seen[:12]),
                found=", ".join(years),
                hint="set study.school_years (or --school-years) to the years of the study",
            )
        # every table written here is ordered explicitly or is an aggregate: DuckDB need not keep
        # the scans' order (which costs memory); the connection's setting is restored afterwards
        order = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
        con.execute("SET preserve_insertion_order = false")
        _prepare(con, years, part, say)
        con.execute("BEGIN TRANSACTION")
        try:
            report = _link(con, years, say)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute(f"SET preserve_insertion_order = {'true' if order else 'false'}")
    return report


def load_population(db: Any = DEFAULT_DB, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``population`` table as a frame (categories as :class:`pandas.CategoricalDtype`)."""
    from survey.datamodel import AGE_BANDS, DWSE_APPLICATIONS

    with connect(db, read_only=not _is_con(db)) as con:
        require_table(con, "population", "run `popeval ingest` and then link the population")
        cols = ", ".join(f'"{c}"' for c in (columns or POPULATION_COLUMNS))
        df = con.execute(f"SELECT {cols} FROM population ORDER BY person_key").df()
    for c in CHARACTERISTICS:
        if c in df.columns:
            vocab = AGE_BANDS if c == "age_band" else DWSE_APPLICATIONS.column(c).vocabulary
            df[c] = df[c].astype("category").cat.set_categories(codes(vocab or ()))
    return df


def _is_con(db: Any) -> bool:
    return not isinstance(db, str | Path)


def school_year_window(school_years: Sequence[str] | None) -> tuple[str, ...]:
    import re

    allowed = codes(SCHOOL_YEARS)
    if school_years is None:
        return tuple(allowed)
    years = tuple(school_years)

    def ok(y: str) -> bool:
        m = re.fullmatch(r"(\d{4})-(\d{2})", y)
        return m is not None and (int(m.group(1)) + 1) % 100 == int(m.group(2))

    bad = [y for y in years if not ok(y)]
    if not years or bad:
        raise ConfigError(
            "Unknown school year in the study window",
            param="school_years",
            expected="one or more school years such as " + ", ".join(allowed[:2]),
            found=", ".join(bad) if bad else "an empty window",
            hint="school years are written like 2021-22 (1 September 2021 to 31 August 2022)",
        )
    return years


def _participants_frame(participants: Any, key_attribute: str = "attribute_1", pseudo_key: bytes | None = None) -> pd.DataFrame | None:
    import pandas as pd

    if participants is None:
        return None
    if isinstance(participants, pd.DataFrame):
        from survey.datamodel import SURVEY_PARTICIPANTS
        from survey.validate import validate_frame

        return validate_frame(participants, SURVEY_PARTICIPANTS, source="participants frame")
    from survey.parse import read_participants

    return read_participants(participants, key_attribute=key_attribute, pseudo_key=pseudo_key)


def _prepare(con: duckdb.DuckDBPyConnection, years: tuple[str, ...], part: pd.DataFrame | None, say: Callable[[str], None]) -> None:
    """The person-level parts of the linkage, as temporary tables built outside the transaction.

    They read committed tables only; outside a transaction DuckDB can spill them to disk under its
    memory limit (a transaction keeps its temporary data in memory).
    """
    import pandas as pd

    con.execute("CREATE OR REPLACE TEMP TABLE _window AS SELECT unnest(?::VARCHAR[]) AS school_year", [list(years)])
    ages = pd.DataFrame({"age": range(0, 131)})
    ages["band"] = [age_band(a) for a in ages["age"]]
    con.register("_age_frame", ages)
    con.execute("CREATE OR REPLACE TEMP TABLE _age_bands AS SELECT age::BIGINT AS age, band FROM _age_frame")
    con.unregister("_age_frame")
    # the approved OC applications in the window: a view (scanned twice, never copied)
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW _oc AS
        SELECT a.* FROM dwse_applications a SEMI JOIN _window w USING (school_year)
        WHERE a.incentive = 'OC' AND a.status = 'goedgekeurd'
        """
    )
    say("approved opleidingscheque applications in the window selected")
    # the parts of the population, one query each (each hash table is freed before the next;
    # temporary tables spill to disk under the memory limit)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _agg AS
        -- one hash aggregate per person, its state a few numbers; the latest application is
        -- the largest (application_date, application_id) pair
        SELECT person_key, count(*) AS n_oc_applications,
               count(*) FILTER (WHERE pop_based) AS n_pop_oc_applications,
               min(application_date) AS first_oc_date,
               max(application_date) AS last_oc_date,
               min(application_date) FILTER (WHERE pop_based) AS first_pop_date,
               max({'d': application_date, 'i': application_id}).i AS latest_id
        FROM _oc GROUP BY person_key
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _lbc AS
        SELECT t.person_key, count(*) AS n_trajectories, bool_or(t.pop_made) AS pop_made,
               bool_or(t.pop_attest) AS pop_attest,
               bool_or(t.start_date <= g.last_oc_date) AS guidance_before_training
        FROM vdab_trajectories t JOIN _agg g USING (person_key)
        GROUP BY t.person_key
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _match AS
        SELECT DISTINCT o.person_key FROM _oc o
        SEMI JOIN (SELECT person_key, attest_training_id FROM vdab_trajectories WHERE attest_training_id IS NOT NULL) t
            ON o.person_key = t.person_key AND o.training_id = t.attest_training_id
        """
    )
    # every DWSE person once, with why they are (not) in the population
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _dwse_persons AS
        SELECT a.person_key, count(*) AS n_applications,
               bool_or(a.incentive = 'OC') AS any_oc,
               bool_or(a.incentive = 'OC' AND w.school_year IS NOT NULL) AS oc_in_window,
               bool_or(a.incentive = 'OC' AND w.school_year IS NOT NULL AND a.status = 'goedgekeurd') AS oc_ok
        FROM dwse_applications a LEFT JOIN _window w USING (school_year)
        GROUP BY a.person_key
        """
    )
    if part is None:
        part = pd.DataFrame({"tid": pd.Series([], dtype="int64"), "token": pd.Series([], dtype="string"),
                             "attribute_1": pd.Series([], dtype="string")})
    con.register("_part_frame", part.loc[:, ["tid", "token", "attribute_1"]])
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _participants AS "
        "SELECT CAST(tid AS BIGINT) AS tid, CAST(token AS VARCHAR) AS token, CAST(attribute_1 AS VARCHAR) AS attribute_1 "
        "FROM _part_frame"
    )
    con.unregister("_part_frame")

    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _population AS
        WITH latest AS (
            -- application_id is unique: the latest application's row, by a join on it
            SELECT o.* FROM _oc o SEMI JOIN _agg g ON g.latest_id = o.application_id
        ),
        agg AS (SELECT * FROM _agg),
        lbc AS (SELECT * FROM _lbc),
        match AS (SELECT * FROM _match),
        inv AS (
            SELECT attribute_1 AS person_key, min(tid) AS tid FROM _participants GROUP BY attribute_1
        )
        SELECT l.person_key,
               g.n_pop_oc_applications > 0 AS pop,
               l.sex, b.band AS age_band, l.educ, l.sector, l.nace, l.company_size, l.province, l.statute,
               l.birth_year, year(l.application_date) - l.birth_year AS age,
               l.application_id AS reference_application_id, l.application_date AS reference_date,
               l.school_year AS reference_school_year,
               g.n_oc_applications, g.n_pop_oc_applications, g.first_oc_date, g.first_pop_date,
               lbc.person_key IS NOT NULL AS had_guidance,
               coalesce(lbc.n_trajectories, 0) AS n_trajectories,
               coalesce(lbc.pop_made, false) AS pop_made,
               coalesce(lbc.pop_attest, false) AS pop_attest,
               match.person_key IS NOT NULL AS attest_matches_training,
               coalesce(lbc.guidance_before_training, false) AS guidance_before_training,
               inv.person_key IS NOT NULL AS invited,
               inv.tid
        FROM latest l
        JOIN agg g USING (person_key)
        JOIN _age_bands b ON b.age = greatest(0, least(130, year(l.application_date) - l.birth_year))
        LEFT JOIN lbc USING (person_key)
        LEFT JOIN match USING (person_key)
        LEFT JOIN inv USING (person_key)
        ORDER BY l.person_key
        """
    )


def _duplicate_applications(con: duckdb.DuckDBPyConnection) -> int:
    """Applications repeating another of the same person, incentive, training and date.

    Repeated applications repeat their hash: the 64-bit hashes are aggregated first (no strings in
    the hash table) and only the rows whose hash repeats are grouped by the columns themselves (a
    hash collision lands there too and counts nothing).
    """
    cols = "person_key, incentive, training_id, application_date"
    row = con.execute(
        f"""
        WITH h AS (SELECT hash({cols}) AS h FROM dwse_applications GROUP BY h HAVING count(*) > 1)
        SELECT coalesce(sum(n - 1), 0) FROM (
            SELECT count(*) AS n FROM dwse_applications WHERE hash({cols}) IN (SELECT h FROM h)
            GROUP BY {cols} HAVING count(*) > 1)
        """
    ).fetchall()[0]
    return int(row[0] or 0)


def _link(con: duckdb.DuckDBPyConnection, years: tuple[str, ...], say: Callable[[str], None]) -> LinkageReport:
    # the participants and the population were built outside the transaction (where DuckDB can
    # spill them); here they become the study's tables
    con.execute("CREATE OR REPLACE TABLE survey_participants AS SELECT * FROM _participants")
    con.execute("CREATE OR REPLACE TABLE population AS SELECT * FROM _population ORDER BY person_key")

    def one(sql: str) -> int:
        row = con.execute(sql).fetchall()[0]
        return int(row[0]) if row and row[0] is not None else 0

    say("population built")
    population, pop_users, oc_apps, multi_oc = (
        int(x or 0) for x in con.execute(
            "SELECT count(*), count_if(pop), sum(n_oc_applications), count_if(n_oc_applications > 1) FROM population"
        ).fetchall()[0]
    )
    excl = con.execute(
        """
        SELECT coalesce(sum(n_applications), 0), count(*),
               count(*) FILTER (WHERE NOT any_oc),
               count(*) FILTER (WHERE oc_in_window AND NOT oc_ok),
               count(*) FILTER (WHERE any_oc AND NOT oc_in_window)
        FROM _dwse_persons
        """
    ).fetchall()[0]
    dwse_apps, dwse_persons, no_oc, refused_only, outside = (int(x) for x in excl)
    # a population person's applications disagree on a variable when they hold more than one
    # distinct value of it: its minimum is below its maximum
    conflict_sql = ", ".join(f"min(a.{v}) < max(a.{v}) AS c_{v}" for v in _CONFLICT_VARS)
    crow = con.execute(
        f"""
        WITH d AS (
            SELECT {conflict_sql}
            FROM dwse_applications a SEMI JOIN population p ON p.person_key = a.person_key
            GROUP BY a.person_key
        )
        SELECT {", ".join(f"count_if(c_{v})" for v in _CONFLICT_VARS)} FROM d
        """
    ).fetchall()[0]
    conflicts = MappingProxyType({v: int(n) for v, n in zip(_CONFLICT_VARS, crow, strict=True)})
    say("DWSE persons accounted for")
    vrow = con.execute(
        """
        WITH v AS (SELECT person_key, count(*) AS n FROM vdab_trajectories GROUP BY person_key),
             d AS (SELECT person_key FROM _dwse_persons)
        SELECT count(*),
               count(*) FILTER (WHERE p.person_key IS NOT NULL),
               count(*) FILTER (WHERE p.person_key IS NULL AND d.person_key IS NOT NULL),
               count(*) FILTER (WHERE d.person_key IS NULL),
               count(*) FILTER (WHERE v.n > 1)
        FROM v LEFT JOIN population p USING (person_key) LEFT JOIN d USING (person_key)
        """
    ).fetchall()[0]
    v_persons, v_linked, v_dwse_only, v_unlinked, v_multi = (int(x) for x in (vrow or (0,) * 5))
    prow = con.execute(
        """
        WITH s AS (
            SELECT s.*, row_number() OVER (PARTITION BY attribute_1 ORDER BY tid) AS rn FROM survey_participants s
        )
        SELECT count(*),
               count(*) FILTER (WHERE p.person_key IS NOT NULL),
               count(*) FILTER (WHERE p.person_key IS NULL),
               count(*) FILTER (WHERE rn > 1),
               count(DISTINCT p.person_key)
        FROM s LEFT JOIN population p ON p.person_key = s.attribute_1
        """
    ).fetchall()[0]
    n_part, p_linked, p_unlinked, p_dup, p_invited = (int(x) for x in (prow or (0,) * 5))
    report = LinkageReport(
        school_years=years,
        dwse_applications=dwse_apps,
        dwse_persons=dwse_persons,
        population=population,
        pop_users=pop_users,
        oc_applications_in_population=oc_apps,
        persons_multiple_oc=multi_oc,
        excluded_no_oc=no_oc,
        excluded_oc_refused=refused_only,
        excluded_oc_outside_window=outside,
        duplicate_applications=_duplicate_applications(con),
        vdab_trajectories=one("SELECT count(*) FROM vdab_trajectories"),
        vdab_persons=v_persons,
        vdab_linked=v_linked,
        vdab_dwse_only=v_dwse_only,
        vdab_unlinked=v_unlinked,
        persons_multiple_trajectories=v_multi,
        participants=n_part,
        participants_linked=p_linked,
        participants_unlinked=p_unlinked,
        participant_duplicate_keys=p_dup,
        population_invited=p_invited,
        conflicts=conflicts,
    )
    if population + no_oc + refused_only + outside != dwse_persons:  # pragma: no cover - internal invariant
        raise RuntimeError("linkage accounting does not add up; please report this as a bug")
    say("VDAB persons and survey participants linked")
    for tmp in ("_agg", "_lbc", "_match", "_dwse_persons", "_population", "_participants"):
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
    frame = report.to_frame()
    con.register("_report_frame", frame)
    con.execute("CREATE OR REPLACE TABLE linkage_report AS SELECT * FROM _report_frame")
    con.unregister("_report_frame")
    return report
