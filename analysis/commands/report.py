"""``popeval report``: render the evaluation report of a results bundle (HTML, PDF, DOCX)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "check_params", "report_parameters", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval report``."""
    p.add_argument("--bundle", required=True, help="the results bundle folder (written by `popeval run`)")
    p.add_argument("--lang", choices=["nl", "en"], default="nl", help="report language (default nl)")
    p.add_argument("--out", default=None, help="output folder (default reports/_output)")
    p.add_argument(
        "-P",
        "--param",
        dest="params",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="report parameter, as quarto's -P (e.g. -P threshold=10); repeatable",
    )
    p.add_argument(
        "--format",
        dest="formats",
        action="append",
        choices=["html", "pdf", "docx"],
        default=None,
        help="output format; repeatable (default: html, pdf and docx)",
    )
    p.add_argument("--engine", choices=["auto", "quarto", "python"], default="auto", help="quarto when on PATH (auto), or the python fallback")
    p.add_argument("--qmd", default=None, help="report source (default reports/evaluation-<lang>.qmd)")
    p.add_argument(
        "--disable-disclosure-control",
        action="store_true",
        help="allow -P threshold=1, which suppresses no count at all (never for published reports); the override is printed and recorded",
    )


def report_parameters(qmd: Path) -> dict[str, str]:
    """The parameters a report takes: name -> default text.

    Those of its ``#| tags: [parameters]`` cell, and the optional ones that the report or the files
    beside it (its includes) read with ``globals().get("name")``.
    """
    import re

    lines = qmd.read_text(encoding="utf-8").splitlines()
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        if line.startswith("#|") and "tags:" in line and "parameters" in line:
            for body in lines[i + 1 :]:
                if body.startswith("```"):
                    break
                a = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*(#.*)?$", body)
                if a:
                    out[a.group(1)] = a.group(2)
            break
    # optional parameters that the report or its includes read only when given
    for f in sorted(qmd.parent.glob("*.qmd")):
        for name in re.findall(r"""globals\(\)\.get\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""", f.read_text(encoding="utf-8")):
            out.setdefault(name, "None")
    return out


def check_params(params: dict[str, Any], qmd: Path, *, allow_no_disclosure_control: bool = False) -> dict[str, Any]:
    """Validate ``-P`` parameters against the report's parameters cell and the disclosure rules.

    Raises
    ------
    ConfigError
        For an unknown or reserved parameter, a threshold that is not a whole number of at least 1,
        or a threshold of 1 (no disclosure control) without the explicit override.
    """
    from survey.errors import ConfigError

    declared = report_parameters(qmd)
    for reserved in ("bundle", "lang"):
        if reserved in params:
            raise ConfigError("Reserved report parameter", param=reserved, expected=f"--{reserved} instead of -P {reserved}=...", found=str(params[reserved]))
    settable = sorted(k for k in declared if k not in ("bundle", "lang", "run_time"))
    for name in params:
        if declared and name not in declared:
            raise ConfigError(
                "Unknown report parameter",
                file=qmd,
                param=name,
                expected="one of " + ", ".join(settable),
                found=name,
                hint="check the spelling; the report's parameters cell lists them",
            )
    if "threshold" in params and params["threshold"] is not None:
        thr = params["threshold"]
        if isinstance(thr, bool) or not isinstance(thr, int) or thr < 1:
            raise ConfigError(
                "Invalid disclosure threshold",
                param="threshold",
                expected="a whole number >= 2 (counts below it are suppressed; default: the bundle's, 5)",
                found=repr(thr),
                hint="e.g. -P threshold=10",
            )
        if thr == 1 and not allow_no_disclosure_control:
            raise ConfigError(
                "A disclosure threshold of 1 suppresses no count",
                param="threshold",
                expected="a whole number >= 2",
                found="1",
                hint="published tables must not show small counts; for an internal check only, add --disable-disclosure-control",
            )
    return params


def run(args: argparse.Namespace) -> int:
    """Render the report and list the files written."""
    import sys

    from analysis.report.render import default_qmd, parse_param, render_report

    params = dict(parse_param(p) for p in args.params)
    qmd = Path(args.qmd) if args.qmd else default_qmd(args.lang)
    if qmd.is_file():
        check_params(params, qmd, allow_no_disclosure_control=args.disable_disclosure_control)
    if params.get("threshold") == 1:
        print("popeval report: WARNING: disclosure control disabled (-P threshold=1 with --disable-disclosure-control); do not publish this report", file=sys.stderr)
        params["disclosure_control_disabled"] = True
    result = render_report(
        args.bundle,
        lang=args.lang,
        out=args.out,
        params=params,
        formats=tuple(args.formats or ("html", "pdf", "docx")),
        qmd=args.qmd,
        engine=args.engine,
    )
    print(result.summary())
    return 0
