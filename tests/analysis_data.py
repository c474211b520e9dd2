"""A synthetic study's respondents as the estimation sees them (shared by the estimation tests)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def respondent_frame(out: Path | None = None, *, persons: int, seed: int) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The shared study of ``persons`` and ``seed`` (Parquet): its analysis frame, population margins and population.

    The steps of ``popeval run`` up to the estimation: ingest and link in an in-memory DuckDB, the
    default margins, and the respondents' analysis frame with design weights and outcomes.  The
    study is generated once per test run (:func:`shared_studies.generated_study`, read-only) and
    shared by the test files that ask for the same one.

    Parameters
    ----------
    out
        Not needed: the study is the shared one (a caller's temporary folder is accepted and left alone).
    persons, seed
        As for :func:`analysis.synth.generate`.
    """
    import duckdb
    from shared_studies import generated_study

    from analysis.estimation import EstimatorSpec
    from analysis.pipeline import _analysis_frame
    from analysis.population import ingest, link, load_population, margins
    from survey.parse import parse_snapshot

    del out
    out = generated_study(persons, seed, file_format="parquet")
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
