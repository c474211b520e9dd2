"""Synthetic studies generated once per test run and shared, read-only, by every test that needs one.

:func:`generated_study` writes a study with :func:`analysis.synth.generate` (and, with ``plans``, its
POP texts with :func:`analysis.plans.synth.generate_plans`) the first time a (size, seed, format)
is asked for, and returns the same folder afterwards.  The same arguments give the same files, so a
test reading the shared folder sees exactly what a study of its own would hold.

The folder is shared by all processes of the run (``pytest -n``: ``tests/conftest.py`` hands the
controller's folder to each worker): a file lock per study lets the first process that asks for it
write it while the others wait, and a study counts as written once its digest file
(``<study>.sha256``, beside it) exists.  Tests never write into a shared study (derived data, study
TOMLs and edited copies go to their own temporary folders); :func:`check_unchanged`, called by
``tests/conftest.py`` at the end of each process's session, fails the session if a shared study was
changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

__all__ = ["check_unchanged", "generated_study", "set_root"]

_root: Path | None = None
_studies: dict[tuple[int, int, str, bool], Path] = {}


def set_root(folder: Path) -> None:
    """Where the shared studies are written (``tests/conftest.py``: one temporary folder for the run)."""
    global _root
    _root = folder


def generated_study(persons: int, seed: int, *, plans: bool = False, file_format: str = "csv") -> Path:
    """The shared study of ``persons`` persons and ``seed`` (with POP texts when ``plans``); read-only.

    Parameters
    ----------
    persons, seed, file_format
        As for :func:`analysis.synth.generate`.
    plans
        Also the POP texts, the training catalogue and their true codes
        (:func:`analysis.plans.synth.generate_plans` with the same seed).
    """
    key = (persons, seed, file_format, plans)
    if key not in _studies:
        from filelock import FileLock

        if _root is None:
            raise RuntimeError("the shared studies' folder is not set (tests/conftest.py sets it)")
        out = _root / f"{persons}-{seed}-{file_format}{'-plans' if plans else ''}"
        written = _digest_file(out)
        with FileLock(out.with_name(out.name + ".lock")):
            if not written.exists():  # the first process to ask writes it; the others wait, then read it
                if out.exists():  # left half-written by a process that died
                    shutil.rmtree(out)
                if plans:
                    shutil.copytree(generated_study(persons, seed, file_format=file_format), out)
                    from analysis.plans.synth import generate_plans

                    generate_plans(out, seed=seed)
                else:
                    from analysis.synth import generate

                    generate(persons=persons, seed=seed, out=out, file_format=file_format)
                tmp = written.with_name(written.name + f".{os.getpid()}.tmp")
                tmp.write_text(_digest(out), encoding="utf-8")
                tmp.replace(written)
        _studies[key] = out
    return _studies[key]


def check_unchanged() -> list[str]:
    """The shared studies whose files changed since they were written (none, when every test kept to its own folders).

    Every study of the run is checked, whichever process wrote it.
    """
    if _root is None:
        return []
    return [str(f.with_suffix("")) for f in sorted(_root.glob("*.sha256"))
            if _digest(f.with_suffix("")) != f.read_text(encoding="utf-8")]


def _digest_file(study: Path) -> Path:
    return study.with_name(study.name + ".sha256")


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()
