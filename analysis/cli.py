"""The ``popeval`` command line.

Each subcommand lives in the module that does its work and exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int``.  :func:`make_parser` builds the parser without
importing the heavy modules' dependencies (they import numpy, pandas... inside ``run``), so that
``popeval --help`` is fast and tests can call the parser without a subprocess.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from survey.errors import PopevalError

__all__ = ["COMMANDS", "main", "make_parser", "version"]

#: subcommand -> (module with add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("analysis.commands.demo", "generate the synthetic demo study with known truth"),
    "run": ("analysis.commands.run", "run the whole study from a configuration file (fetch to report)"),
    "deploy": ("survey.commands.deploy", "import and activate the survey on LimeSurvey and add the participants"),
    "fetch": ("survey.commands.fetch", "snapshot the LimeSurvey responses and participants (or ingest an export)"),
    "ingest": ("analysis.commands.ingest", "load the DWSE/VDAB extracts into DuckDB and link the study population (separate from `run`, which does this itself)"),
    "report": ("analysis.commands.report", "render the evaluation report of a results bundle to HTML, PDF and DOCX"),
    "init": ("analysis.commands.init", "write a commented study TOML (and a survey mapping skeleton) from the files you were given"),
    "check": ("analysis.commands.check", "dry run: show how each input is read and mapped (columns, codes, detected format); computes nothing"),
    "pseudonymise": ("analysis.commands.pseudonymise", "replace raw INSZ in an invitation list by the study's keyed hashes (before deploy)"),
    # the POP part: sample, coding sheets, agreement, estimates (analysis/plans)
    "plans": ("analysis.plans.command", "read the POPs: sample, coding sheets, agreement, concordance and estimates"),
}


def version() -> str:
    """The installed popeval version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _v

    try:
        return _v("popeval")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


def make_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="popeval",
        description="popeval: survey, admin linkage, weighting, matching and reports for the POP evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"popeval {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``popeval``.

    Exit status: 0 on success; 2 for an error, printed as its structured message (never a
    traceback); 130 for Ctrl-C and 143 for ``SIGTERM``, after one line saying so; 1 for an
    unexpected internal error, printed in one line (the traceback only with ``POPEVAL_DEBUG=1``).
    """

    import signal

    from analysis.processes import Interrupted, announce, handle_interruptions, received_signal

    parser = make_parser()
    args = parser.parse_args(argv)
    stopped = f"popeval {args.command}: interrupted"
    try:
        with handle_interruptions(stopped):
            return int(importlib.import_module(args._module).run(args) or 0)
    except Exception as exc:
        signum = received_signal()
        if signum is not None:  # the interruption surfaced as another exception while unwinding
            announce(f"{stopped} ({signal.Signals(signum).name})")
            return 128 + signum
        return _error_status(args.command, exc)
    except Interrupted as exc:
        announce(f"{stopped} ({exc})")
        return exc.exit_status
    except KeyboardInterrupt:
        announce(stopped)
        return 130


def _error_status(command: str, exc: Exception) -> int:
    """Print an error in one line (no traceback) and return the exit status."""
    import os

    if isinstance(exc, PopevalError):
        print(f"popeval {command}: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"popeval {command}: error: {exc.strerror or exc}{where}\n  hint: check that the file exists and that its folder can be written", file=sys.stderr)
        return 2
    if os.environ.get("POPEVAL_DEBUG"):
        raise exc
    print(f"popeval {command}: internal error: {type(exc).__name__}: {exc}\n  hint: rerun with POPEVAL_DEBUG=1 for the traceback and report it", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
