"""``popeval report``: render the evaluation report of a results bundle (HTML, PDF, DOCX)."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


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


def run(args: argparse.Namespace) -> int:
    """Render the report and list the files written."""
    from analysis.render import parse_param, render_report

    params = dict(parse_param(p) for p in args.params)
    for reserved in ("bundle", "lang"):
        if reserved in params:
            from survey.errors import ConfigError

            raise ConfigError("Reserved report parameter", param=reserved, expected=f"--{reserved} instead of -P {reserved}=...", found=str(params[reserved]))
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
