"""A synthetic study's respondents as the estimation sees them (shared by the estimation tests)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def respondent_frame(out: Path, *, persons: int, seed: int) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Generate a study into ``out``; return its analysis frame, population margins and population.

    The steps of ``popeval run`` up to the estimation: ingest and link in an in-memory DuckDB, the
    default margins, and the respondents' analysis frame with design weights and outcomes.
    """
    import duckdb

    from analysis.estimation import EstimatorSpec
    from analysis.pipeline import _analysis_frame
    from analysis.population import ingest, link, load_population, margins
    from analysis.synth import generate
    from survey.parse import parse_snapshot

    generate(persons=persons, seed=seed, out=out, file_format="parquet")
    snap = next((out / "survey").glob("*/*/manifest.json")).parent
    con = duckdb.connect(":memory:")
    ingest(out / "admin" / "dwse_applications.parquet", out / "admin" / "vdab_trajectories.parquet", db=con)
    link(con, participants=snap)
    population = load_population(con)
    spec = EstimatorSpec()
    mg = margins(con, [k[0] if len(k) == 1 else tuple(k) for k in spec.margins])
    con.close()
    frame, _ = _analysis_frame(parse_snapshot(snap), population, spec.outcomes, with_outcomes=True)
    return frame, mg.totals, population
