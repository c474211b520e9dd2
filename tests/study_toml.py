"""Write the study TOML of a test: the settings every test study shares, and each test's own.

:func:`study_settings` gives the shared settings (a study name, seed 7, a derived folder, one worker,
no replicates, no rendering) and, for a study written by :func:`analysis.synth.generate`, its survey
snapshots and admin extracts in popeval's own schema; each test's own settings are merged over them,
per section.  :func:`write_study_toml` writes the result (``tomli_w``), so every test study is read
by :func:`analysis.config.load_config` from a real file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["study_settings", "write_study_toml"]


def study_settings(
    name: str,
    derived: Path | str = "derived",
    *,
    generated: Path | None = None,
    seed: int = 7,
    replicates: int = 0,
    methods: Sequence[str] | None = None,
    **sections: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """The settings of a test study, section by section.

    Parameters
    ----------
    name, derived, seed
        ``[study]``: the study's name, its derived folder and its seed.
    generated
        A study folder written by :func:`analysis.synth.generate`: ``[survey]`` reads its latest
        snapshot and ``[admin]`` its two extracts (absolute paths).
    replicates, methods
        ``[effects]``: the number of end-to-end replicates (with one worker) and the methods
        (default: the configuration's).
    **sections
        Further settings per section (``effects={"alpha": 0.1}``, ``plans={...}``); their keys
        replace the shared ones of the same section.
    """
    from analysis.synth import DEMO_SURVEY_ID

    data: dict[str, dict[str, Any]] = {
        "study": {"name": name, "seed": seed, "derived_dir": Path(derived).as_posix()},
        "effects": {"replicates": replicates, "workers": 1},
        "report": {"render": False},
    }
    if methods is not None:
        data["effects"]["methods"] = list(methods)
    if generated is not None:
        data["survey"] = {"survey_id": DEMO_SURVEY_ID, "snapshot": "latest", "snapshots_dir": (generated / "survey").as_posix()}
        data["admin"] = {
            "dwse": (generated / "admin" / "dwse_applications.csv").as_posix(),
            "vdab": (generated / "admin" / "vdab_trajectories.csv").as_posix(),
        }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return {k: data[k] for k in sorted(data, key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k))}


#: The order of the sections in a written study TOML (as in ``popeval init``'s template).
_ORDER = ("study", "survey", "admin", "weighting", "matching", "effects", "report", "plans")


def write_study_toml(path: Path, settings: Mapping[str, Mapping[str, Any]], *, comment: str = "") -> Path:
    """Write ``settings`` as a study TOML at ``path`` (with ``comment`` as its first lines); return ``path``."""
    import tomli_w

    head = "".join(f"# {line}\n" for line in comment.splitlines())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + tomli_w.dumps(settings), encoding="utf-8")
    return path
