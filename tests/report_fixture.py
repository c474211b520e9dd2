"""A small results bundle for the report tests, written by the real pipeline.

:func:`make_demo_bundle` takes a small synthetic study (:func:`analysis.synth.generate`, shared with the
other tests of the session through :func:`shared_studies.generated_study`) and runs
``popeval run`` on it (every step: ingest, linkage, weighting, matching, effects with end-to-end
replicates, sensitivity), without rendering, and copies the bundle to ``out``.  With ``plans`` the
study has POP texts and the run a ``[plans]`` section, and the POP sample is drawn and coded first by
the demo's simulated coders and reconcilers (``popeval plans simulate --complete``), as in a
newcomer's ``make demo``: the bundle then holds the POP part's tables too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["PLANS_SAMPLE", "make_demo_bundle"]

#: The POP sample of the bundle with ``plans`` (160 of about 1,500 POPs of the 20,000-person study).
PLANS_SAMPLE = 160


def make_demo_bundle(
    out: str | Path, *, persons: int = 20_000, seed: int = 5, work: str | Path | None = None, replicates: int = 8, plans: bool = False,
) -> Path:
    """Generate a study, run the pipeline on it and copy its bundle to ``out``.

    ``work`` holds the run's derived folder (``<work>/derived``: its database and the POP part's
    sheets), a temporary folder by default.
    """
    import tempfile

    from shared_studies import generated_study

    from analysis.config import config_from_dict
    from analysis.pipeline import run
    from analysis.synth import DEMO_SURVEY_ID

    out = Path(out)
    base = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="popeval-report-"))
    study = generated_study(persons, seed, plans=plans)
    data = {
        "study": {"name": "demo", "seed": 3, "derived_dir": str(base / "derived")},
        "survey": {"survey_id": DEMO_SURVEY_ID, "snapshot": "latest", "snapshots_dir": str(study / "survey")},
        "admin": {"dwse": str(study / "admin" / "dwse_applications.csv"), "vdab": str(study / "admin" / "vdab_trajectories.csv")},
        "effects": {"replicates": replicates, "workers": 1},
        "report": {"render": False},
    }
    if plans:
        data["plans"] = {
            "texts": str(study / "plans" / "pop_texts.parquet"), "trainings": str(study / "plans" / "trainings.csv"),
            "strata": ["incentive"], "sample_size": PLANS_SAMPLE, "bootstrap": 100,
        }
    cfg = config_from_dict(data)
    if plans:
        from analysis.plans.synth import simulate_study

        simulate_study(cfg, study / "truth" / "plans_codes.parquet")
    result = run(cfg, progress=False)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(result.bundle, out)
    return out
