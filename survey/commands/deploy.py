"""``popeval deploy``: put the questionnaire on LimeSurvey and add the participants (idempotent)."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval deploy``."""
    p.add_argument("--lss", help="the .lss to import (default: generated from the questionnaire)")
    p.add_argument("--participants", required=True, help="invitations CSV: attribute_1 (pseudonymous key), email, language")
    p.add_argument("--survey-id", type=int, help="use this survey (default: the one with the questionnaire's title, else import)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each reply (default 60)")


def run(args: argparse.Namespace) -> int:
    """Deploy; credentials from LIMESURVEY_URL, LIMESURVEY_USER, LIMESURVEY_PASSWORD."""
    from pathlib import Path

    from survey.deploy import deploy, read_invitations
    from survey.fetch import credentials_from_env
    from survey.lss import build_lss

    url, user, password = credentials_from_env()
    lss = Path(args.lss).read_bytes() if args.lss else build_lss()
    result = deploy(lss, read_invitations(args.participants), url=url, user=user, password=password,
                    survey_id=args.survey_id, timeout=args.timeout)
    print(result.summary())
    for r in result.rejected[:20]:
        print(f"  rejected: {r}")
    return 0
