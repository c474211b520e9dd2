"""Survey snapshots on disk: find the latest, verify it, merge exports into it, write one atomically.

A snapshot is a folder ``<root>/<survey id>/<UTC timestamp>/`` whose ``manifest.json`` lists the
SHA-256 of every other file in it (see :mod:`survey.fetch` for the files).  This module is the one
place that

* finds the latest snapshot of a survey (:func:`latest_snapshot`); a newer folder that is not a
  complete snapshot is never skipped silently: a :class:`SnapshotWarning` names it, says why it was
  passed over and which snapshot is used instead;
* checks a snapshot against its manifest before it is used (:func:`verify_snapshot`): a file that is
  missing, changed or not listed is an error naming the file;
* merges an export into the previous snapshot's responses (:func:`merge_responses`), refusing an
  export that repeats a response id;
* writes a snapshot (:func:`write_snapshot`): every file goes to a temporary name and is renamed,
  inside a hidden temporary folder that is renamed to its final name last, when everything is in it;
* re-derives an incremental snapshot from its predecessor and the export it received
  (:func:`verify_chain`), so the chain of snapshots can be reproduced.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import DataValidationError
from survey.hashing import sha256_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MANIFEST",
    "Merge",
    "SnapshotWarning",
    "latest_snapshot",
    "merge_responses",
    "publish_snapshot",
    "read_snapshot_rows",
    "verify_chain",
    "verify_snapshot",
    "write_snapshot",
]

MANIFEST = "manifest.json"

Rows = dict[int, list[str | None]]


class SnapshotWarning(UserWarning):
    """A snapshot was passed over (incomplete or being written) in favour of an older one."""


# ----------------------------------------------------------------------------- find and verify


def _why_not_complete(folder: Path) -> str | None:
    """Why ``folder`` is not a complete snapshot (``None`` when it is one)."""
    if folder.name.startswith("."):
        return "it is a temporary folder of a fetch that is still running or was interrupted"
    m = folder / MANIFEST
    if not m.is_file():
        return f"it has no {MANIFEST} (a fetch or a copy did not finish)"
    try:
        manifest = json.loads(m.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"its {MANIFEST} is not valid JSON (it was cut off)"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return f"its {MANIFEST} has no list of files"
    missing = [n for n in manifest["files"] if not (folder / n).is_file()]
    if missing:
        return "files listed in its manifest are missing: " + ", ".join(sorted(missing))
    return None


def _stamp(folder: Path) -> str:
    """The UTC time a snapshot folder (or the temporary folder of one being written) is named by."""
    from survey.files import TEMP_PREFIX

    name = folder.name
    if name.startswith(TEMP_PREFIX):
        name = name[len(TEMP_PREFIX):]
    return name.lstrip(".")


def latest_snapshot(root: str | Path, survey_id: int) -> Path | None:
    """The newest complete snapshot of ``survey_id`` under ``root`` (``None`` if there is none).

    Snapshot folders are named by their UTC time, so the newest sorts last.  A newer folder that is
    not a complete snapshot (no manifest, a cut-off manifest, a listed file missing, or the hidden
    temporary folder of an unfinished fetch) is passed over with a :class:`SnapshotWarning` that names
    it, says why, and names the snapshot used instead.
    """
    base = Path(root) / str(int(survey_id))
    if not base.is_dir():
        return None
    folders = sorted((p for p in base.iterdir() if p.is_dir()), key=_stamp)
    skipped: list[tuple[Path, str]] = []
    for folder in reversed(folders):
        why = _why_not_complete(folder)
        if why is None:
            for bad, reason in skipped:
                warnings.warn(
                    f"survey snapshot {bad} is newer but was not used: {reason}; using {folder.name} instead",
                    SnapshotWarning,
                    stacklevel=2,
                )
            return folder
        skipped.append((folder, why))
    for bad, reason in skipped:
        warnings.warn(f"survey snapshot {bad} is not complete and was not used: {reason}", SnapshotWarning, stacklevel=2)
    return None


def verify_snapshot(snapshot: str | Path) -> dict[str, Any]:
    """Check every file of a snapshot folder against the SHA-256 in its manifest; return the manifest.

    Raises
    ------
    DataValidationError
        Naming the file that is missing, changed since the snapshot was written, or not listed.
    """
    snap = Path(snapshot)
    mpath = snap / MANIFEST
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataValidationError(
            "The survey snapshot has no manifest", file=mpath, expected=f"{MANIFEST} listing the SHA-256 of every file",
            found="no such file", hint="fetch the survey again (`popeval fetch`); never edit a snapshot by hand",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataValidationError(
            "The survey snapshot's manifest is not valid JSON", file=mpath, found=str(exc),
            hint="the snapshot was cut off or edited; fetch the survey again",
        ) from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise DataValidationError("The survey snapshot's manifest lists no files", file=mpath, expected='a "files" object: name -> SHA-256')
    for name, digest in sorted(files.items()):
        p = snap / name
        if not p.is_file():
            raise DataValidationError(
                "A file of the survey snapshot is missing", file=p, expected=f"the file listed in {MANIFEST}", found="no such file",
                hint="restore the snapshot from its backup or fetch the survey again",
            )
        got = sha256_file(p)
        if got != digest:
            raise DataValidationError(
                "A file of the survey snapshot was changed after it was written", file=p,
                expected=f"SHA-256 {digest} (from {MANIFEST})", found=f"SHA-256 {got}",
                hint="snapshots are read-only records of what LimeSurvey sent; restore the original or fetch again",
            )
    # hidden files (a file browser's .DS_Store and the like) are never read, so they do not count
    extra = sorted(p.name for p in snap.iterdir()
                   if p.is_file() and p.name != MANIFEST and p.name not in files and not p.name.startswith("."))
    if extra:
        raise DataValidationError(
            "The survey snapshot holds a file its manifest does not list", file=snap / extra[0],
            expected=f"only the files listed in {MANIFEST}", found=", ".join(extra),
            hint="remove the file from the snapshot folder (snapshots are never edited by hand)",
        )
    return manifest


# ----------------------------------------------------------------------------- responses


def _ids(header: Sequence[str], body: Sequence[Sequence[str | None]], source: str | Path) -> list[int]:
    if not header:
        return []
    if "id" not in header:
        raise DataValidationError("The export has no response id column", file=source, column="id",
                                  hint="export with code headings and all columns")
    i = list(header).index("id")
    out: list[int] = []
    seen: set[int] = set()
    for k, r in enumerate(body, start=1):
        try:
            rid = int(str(r[i]))
        except ValueError:
            raise DataValidationError("A response id is not a number", file=source, row=k, column="id", found=repr(r[i])) from None
        if rid in seen:
            raise DataValidationError(
                "A response id occurs twice in the export", file=source, row=k, column="id", found=str(rid),
                expected="each response id once",
                hint="LimeSurvey never exports a response twice; the file was edited or two exports were joined — export again",
            )
        seen.add(rid)
        out.append(rid)
    return out


def read_snapshot_rows(snapshot: Path) -> tuple[list[str], Rows]:
    """Header and rows by response id of a snapshot's ``responses.csv``."""
    from survey.lsformat import parse_responses_bytes

    f = snapshot / "responses.csv"
    header, body = parse_responses_bytes(f.read_bytes(), f)
    return header, dict(zip(_ids(header, body, f), body, strict=True))


@dataclass(frozen=True)
class Merge:
    """The previous snapshot's responses with an export merged in (the export's copy wins)."""

    header: list[str]
    rows: list[dict[str, object]]
    new: tuple[int, ...]
    changed: tuple[int, ...]
    completed: tuple[int, ...]
    unchanged: int
    not_returned: tuple[int, ...]

    def summary(self) -> str:
        """What the export changed, in one line."""
        return (f"{len(self.rows):,} responses: {len(self.new):,} new, {len(self.changed):,} changed "
                f"({len(self.completed):,} completed), {self.unchanged:,} unchanged, {len(self.not_returned):,} not returned")

    def to_frame(self) -> pd.DataFrame:
        """The merged responses (strings, ``None`` for NULL), in id order."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.header, dtype=object)


def merge_responses(previous: tuple[list[str], Rows], header: list[str], body: list[list[str | None]], source: str | Path,
                    *, requested_from: int | None = None) -> Merge:
    """Merge an export (``header``, ``body``) into the previous snapshot's rows.

    ``requested_from`` is the lowest id the export asked for: a previous response at or above it that
    the export does not hold is kept and reported in ``not_returned`` (deleted on the server?).

    Raises
    ------
    DataValidationError
        The export repeats a response id, or its columns differ from the previous snapshot's.
    """
    old_header, old = previous
    ids = _ids(header, body, source)
    if old_header and header and old_header != header:
        raise DataValidationError(
            "The survey's columns changed since the previous snapshot",
            file=source,
            expected="the columns of the previous snapshot: " + ", ".join(old_header[:12]) + (" ..." if len(old_header) > 12 else ""),
            found=", ".join(c for c in header if c not in old_header) or "a different column order",
            hint="the questionnaire was edited on the server; take a full fetch into a new output folder (--full)",
        )
    out_header = header or old_header
    merged = dict(old)
    sub = out_header.index("submitdate") if "submitdate" in out_header else None
    new: list[int] = []
    changed: list[int] = []
    completed: list[int] = []
    unchanged = 0
    for rid, r in zip(ids, body, strict=True):
        before = old.get(rid)
        if before is None:
            new.append(rid)
        elif before != r:
            changed.append(rid)
            if sub is not None and not before[sub] and r[sub]:
                completed.append(rid)
        else:
            unchanged += 1
        merged[rid] = r
    got = set(ids)
    lo = requested_from if requested_from is not None else (min(old) if old else None)
    not_returned = tuple(sorted(k for k in old if lo is not None and k >= lo and k not in got))
    rows: list[dict[str, object]] = [dict(zip(out_header, merged[k], strict=True)) for k in sorted(merged)]
    return Merge(out_header, rows, tuple(new), tuple(changed), tuple(completed), unchanged, not_returned)


# ----------------------------------------------------------------------------- writing


def publish_snapshot(final: str | Path, files: Mapping[str, bytes], manifest: Mapping[str, Any], *, check: Any = None,
                     read_only: bool = True) -> Path:
    """Write the snapshot folder ``final`` with ``files`` and a manifest, atomically.

    The folder is filled under a hidden temporary name beside ``final``
    (:func:`survey.files.atomic_dir`), each file written to a temporary name and renamed
    (:func:`survey.files.atomic_write`); the manifest (``manifest`` plus the SHA-256 of every file) is
    written last, ``check(folder)`` (if given) validates the finished folder, and only then does the
    folder get its final name (an existing ``final`` is replaced only then).  Nothing is left behind
    when anything fails.
    """
    from survey.files import atomic_dir, atomic_write

    final = Path(final)
    with atomic_dir(final) as tmp:
        for name, data in files.items():
            with atomic_write(tmp / name, "wb") as fh:
                fh.write(data)
        full = {**manifest, "files": {name: sha256_file(tmp / name) for name in sorted(files)}}
        with atomic_write(tmp / MANIFEST, "wb") as fh:
            fh.write((json.dumps(full, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        if check is not None:
            check(tmp)
        if read_only:
            for f in tmp.iterdir():
                f.chmod(0o444)
    return final


def write_snapshot(root: str | Path, survey_id: int, files: Mapping[str, bytes], manifest: Mapping[str, Any],
                   *, now: datetime | None = None, check: Any = None) -> Path:
    """Write a new read-only snapshot ``<root>/<survey id>/<UTC time>/`` (see :func:`publish_snapshot`)."""
    base = Path(root) / str(int(survey_id))
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    final = base / stamp
    k = 1
    while final.exists():
        k += 1
        final = base / f"{stamp}-{k}"
    return publish_snapshot(final, files, manifest, check=check)


# ----------------------------------------------------------------------------- the chain


def verify_chain(snapshot: str | Path) -> list[Path]:
    """Verify a snapshot and every snapshot before it; return the chain, oldest first.

    Each snapshot is checked against its manifest; an incremental one must also equal, byte for
    byte, its predecessor's responses with the export it received (``delta_file``) merged in, and
    name its predecessor's manifest by SHA-256.

    Raises
    ------
    DataValidationError
        Naming the snapshot and file that break the chain.
    """
    from survey.lsformat import parse_responses_bytes, write_csv_export

    chain: list[Path] = []
    snap: Path | None = Path(snapshot)
    while snap is not None:
        manifest = verify_snapshot(snap)
        chain.append(snap)
        prev_name = manifest.get("previous")
        prev = snap.parent / prev_name if prev_name else None
        if prev is not None:
            if not prev.is_dir():
                raise DataValidationError("The previous snapshot of this one is missing", file=prev, found="no such folder",
                                          hint="snapshots build on each other; restore the whole survey folder")
            want = manifest.get("previous_manifest_sha256")
            if want and sha256_file(prev / MANIFEST) != want:
                raise DataValidationError("The previous snapshot changed after this one was built on it", file=prev / MANIFEST,
                                          expected=f"SHA-256 {want}", found=sha256_file(prev / MANIFEST))
            delta = manifest.get("delta_file")
            if delta:
                f = snap / delta
                header, body = parse_responses_bytes(f.read_bytes(), f)
                m = merge_responses(read_snapshot_rows(prev), header, body, f, requested_from=manifest.get("requested_from_id"))
                if write_csv_export(m.header, m.rows) != (snap / "responses.csv").read_bytes():
                    raise DataValidationError(
                        "The snapshot's responses are not its predecessor's with its export merged in",
                        file=snap / "responses.csv", expected=f"{prev.name}/responses.csv merged with {delta}",
                        hint="the snapshot chain is broken; fetch again with --full",
                    )
        snap = prev
    return chain[::-1]
