"""``popeval pseudonymise``: replace raw INSZ numbers in an invitation list by the study's keyed hashes.

Run it before ``popeval deploy`` when the list of persons to invite carries raw INSZ numbers: the key
column's INSZ become ``HMAC-SHA256(POPEVAL_PSEUDO_KEY, INSZ)`` (the same keys as the ingested
extracts, so the survey links), values already pseudonymous are kept, and every other column is
scanned: an INSZ-like value elsewhere stops the command (naming the column, never the value).  The
output is written atomically; the input is never changed.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval pseudonymise``."""
    p.add_argument("input", help="the invitation list (CSV with a header row; , or ; separated)")
    p.add_argument("--out", required=True, help="where to write the pseudonymised list (CSV, same columns)")
    p.add_argument("--column", default="attribute_1", help="the column holding the person key (default attribute_1)")


def run(args: argparse.Namespace) -> int:
    """Pseudonymise the list and print what was done."""
    from pathlib import Path

    from survey.insz import pseudo_key_from_env, pseudonymise_file

    res = pseudonymise_file(Path(args.input), Path(args.out), column=args.column, key=pseudo_key_from_env())
    print(f"{res['rows']:,} rows; {res['pseudonymised']:,} raw INSZ in {args.column} pseudonymised, "
          f"{res['kept']:,} keys kept as they were; written to {args.out}")
    return 0
