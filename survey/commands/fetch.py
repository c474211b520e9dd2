"""``popeval fetch``: snapshot the survey's responses and participants (or ingest a downloaded export)."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval fetch``."""
    p.add_argument("--survey-id", type=int, help="the LimeSurvey survey id (default: the only survey under --out)")
    p.add_argument("--out", default="data_raw/survey", help="snapshot root (default data_raw/survey)")
    p.add_argument("--from-file", help="ingest a hand-downloaded export (CSV or JSON) instead of calling the server")
    p.add_argument("--participants", help="with --from-file: a list_participants JSON file")
    p.add_argument("--full", action="store_true", help="ignore earlier snapshots and export every response (default: from the first response that was incomplete in the latest snapshot)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each reply (default 60)")
    p.add_argument("--retries", type=int, default=3, help="retries of transient faults (default 3)")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar")


def run(args: argparse.Namespace) -> int:
    """Fetch; credentials from LIMESURVEY_URL, LIMESURVEY_USER, LIMESURVEY_PASSWORD."""
    from pathlib import Path

    from survey.errors import ConfigError
    from survey.fetch import fetch, ingest_file

    sid = args.survey_id
    if sid is None:
        known = [p.name for p in Path(args.out).iterdir() if p.is_dir() and p.name.isdigit()] if Path(args.out).is_dir() else []
        if len(known) != 1:
            raise ConfigError("Which survey?", param="--survey-id", expected="a survey id",
                              found=f"{len(known)} surveys under {args.out}", hint="pass --survey-id")
        sid = int(known[0])
    if args.from_file:
        result = ingest_file(args.from_file, sid, args.out, participants=args.participants)
    else:
        result = fetch(sid, args.out, full=args.full, timeout=args.timeout, retries=args.retries, progress=not args.no_progress)
    print(result.summary())
    return 0
