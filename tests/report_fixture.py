"""A small results bundle for the report tests, written by the real pipeline.

:func:`make_demo_bundle` takes a small synthetic study (:func:`analysis.synth.generate`, shared with the
other tests of the session through :func:`shared_studies.generated_study`) and runs
``popeval run`` on it (every step: ingest, linkage, weighting, matching, effects with end-to-end
replicates, sensitivity), without rendering, and copies the bundle to ``out``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["make_demo_bundle"]


def make_demo_bundle(out: str | Path, *, persons: int = 20_000, seed: int = 5, work: str | Path | None = None, replicates: int = 8) -> Path:
    """Generate a study, run the pipeline on it and copy its bundle to ``out``."""
    import tempfile

    from shared_studies import generated_study

    from analysis.config import config_from_dict
    from analysis.pipeline import run
    from analysis.synth import DEMO_SURVEY_ID

    out = Path(out)
    base = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="popeval-report-"))
    study = generated_study(persons, seed)
    cfg = config_from_dict(
        {
            "study": {"name": "demo", "seed": 3, "derived_dir": str(base / "derived")},
            "survey": {"survey_id": DEMO_SURVEY_ID, "snapshot": "latest", "snapshots_dir": str(study / "survey")},
            "admin": {"dwse": str(study / "admin" / "dwse_applications.csv"), "vdab": str(study / "admin" / "vdab_trajectories.csv")},
            "effects": {"replicates": replicates, "workers": 1},
            "report": {"render": False},
        }
    )
    result = run(cfg, progress=False)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(result.bundle, out)
    return out
