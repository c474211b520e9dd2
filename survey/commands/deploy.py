"""``popeval deploy``: put the questionnaire on LimeSurvey and add the participants (idempotent)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

__all__ = ["add_arguments", "run", "study_pseudonymises", "write_survey_id"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval deploy``."""
    p.add_argument("--lss", help="the .lss to import (default: generated from the questionnaire)")
    p.add_argument("--participants", required=True, help="invitations CSV: attribute_1 (the person key), email, language")
    p.add_argument("--pseudonymise", action="store_true",
                   help="pseudonymise raw INSZ in attribute_1 with POPEVAL_PSEUDO_KEY before anything is sent "
                   "(also when the --study file has [admin] pseudonymise = true)")
    p.add_argument("--survey-id", type=int, help="use this survey; if it does not exist, import asking for this id "
                   "(default: the one with the questionnaire's title, else import)")
    p.add_argument("--new-survey", action="store_true",
                   help="if the survey on the server differs from the questionnaire, import a new survey instead of refusing")
    p.add_argument("--study", help="a study configuration (TOML) whose [survey] survey_id is set to the deployed survey's id")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each reply (default 60)")


def write_survey_id(study: str | Path, survey_id: int) -> bool:
    """Set ``survey_id`` in the ``[survey]`` table of a study TOML file (atomically); ``True`` if it changed.

    Only that one line is rewritten (or added after ``[survey]``); comments and the rest stay as they are.
    """
    import os
    import tomllib

    from survey.errors import ConfigError

    path = Path(study)
    try:
        text = path.read_text(encoding="utf-8")
        tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError("The study file does not exist", file=path, param="--study", hint="give the study's TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("The study file is not valid TOML", file=path, param="--study", found=str(exc)) from exc
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if re.match(r"^\s*\[survey\]\s*(#.*)?$", ln)), None)
    if start is None:
        new = text + ("" if text.endswith("\n") or not text else "\n") + f"\n[survey]\nsurvey_id = {survey_id}\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines))
        hit = next((i for i in range(start + 1, end) if re.match(r"^\s*survey_id\s*=", lines[i])), None)
        if hit is None:
            lines.insert(start + 1, f"survey_id = {survey_id}\n")
        else:
            lines[hit] = re.sub(r"^(\s*survey_id\s*=\s*)[^#\n]*?(\s*(#.*)?)$", rf"\g<1>{survey_id}\g<2>", lines[hit].rstrip("\n")) + "\n"
        new = "".join(lines)
    if new == text:
        return False
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return True


def study_pseudonymises(study: str | Path) -> bool:
    """Whether the study TOML says ``pseudonymise = true`` under ``[admin]``."""
    import tomllib

    from survey.errors import ConfigError

    path = Path(study)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("The study file does not exist", file=path, param="--study", hint="give the study's TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("The study file is not valid TOML", file=path, param="--study", found=str(exc)) from exc
    admin = data.get("admin")
    value = admin.get("pseudonymise", False) if isinstance(admin, dict) else False
    if not isinstance(value, bool):
        raise ConfigError("Invalid setting in the study configuration", file=path, param="admin.pseudonymise",
                          expected="true or false", found=repr(value), hint="write true or false without quotes")
    return value


def run(args: argparse.Namespace) -> int:
    """Deploy; credentials from LIMESURVEY_URL, LIMESURVEY_USER, LIMESURVEY_PASSWORD.

    With ``--pseudonymise`` (or a ``--study`` whose ``[admin]`` has ``pseudonymise = true``) raw INSZ
    in the invitations are replaced by their keyed hashes (``POPEVAL_PSEUDO_KEY``, the key of the
    extracts) before the server is contacted.
    """
    from survey.deploy import deploy, read_invitations
    from survey.fetch import credentials_from_env
    from survey.insz import pseudo_key_from_env
    from survey.lss import build_lss

    pseudo = args.pseudonymise or (bool(args.study) and study_pseudonymises(args.study))
    invitations = read_invitations(args.participants, pseudo_key=pseudo_key_from_env() if pseudo else None)
    url, user, password = credentials_from_env()
    lss = Path(args.lss).read_bytes() if args.lss else build_lss()
    result = deploy(lss, invitations, url=url, user=user, password=password,
                    survey_id=args.survey_id, new_survey=args.new_survey, timeout=args.timeout)
    print(result.summary())
    for r in result.rejected[:20]:
        print(f"  rejected: {r}")
    if args.study:
        changed = write_survey_id(args.study, result.survey_id)
        print(f"  {args.study}: survey_id = {result.survey_id} {'written' if changed else '(already set)'}")
    elif result.id_changed or result.imported:
        print(f"  put survey_id = {result.survey_id} under [survey] in the study file (or rerun with --study FILE)")
    return 0
