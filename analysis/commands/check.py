"""``popeval check``: a dry run of the inputs of a study; reads and maps, computes nothing.

Per input it prints the detected format and reading settings, every popeval variable with the file's
column it comes from (or how it is derived), for every recoded variable the codes seen and what they
map to (with counts), unmapped codes, INSZ-like values found (counted, never shown), and for the
survey the mapped columns and answer codes.  Nothing is written: the files are read into an
in-memory DuckDB.  Exit status 1 when a problem was found.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "check_study", "run"]

_CHECK_KEY = b"check-only-not-the-study-key"

_SETTINGS_HELP = (
    "Settings of an input ([admin.dwse] / [admin.vdab] in the study TOML): file, format (csv|parquet|sav|dta|xlsx), "
    "sheet, header_row, encoding, delimiter, decimal, date_format, true_values, false_values, missing_values, "
    "value_labels, max_inconsistent_share, isced_cuts; tables columns, extract, codes.<variable>, rules, patterns. "
    "`popeval init` writes them all with comments.\n"
    "Settings of [survey]: survey_id, snapshot, snapshots_dir, participants (GUI CSV or participants.json), key_attribute; "
    "tables columns (popeval variable = the survey's column), answers.<variable> (survey code = popeval code, \"99\" = weet niet), "
    "outcomes.<name> (nl, en, direction; a name of its own defines the survey's own outcomes). "
    "data_raw/README.md documents every setting with a worked example."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval check``."""
    p.add_argument("--config", required=True, help="the study configuration (TOML)")
    p.add_argument("--codes", type=int, default=25, help="codes shown per variable (default 25)")


def run(args: argparse.Namespace) -> int:
    """Print the dry run; 1 when a problem was found."""
    from analysis.config import load_config

    cfg = load_config(args.config)
    text, problems = check_study(cfg, max_codes=args.codes)
    print(text)
    return 1 if problems else 0


def check_study(cfg: Any, max_codes: int = 25) -> tuple[str, int]:
    """The dry-run report of every input of ``cfg`` and the number of problems found."""
    import duckdb

    from analysis.population.ingest import check_codes, plan_input, scan_insz, validate_plan
    from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES
    from survey.errors import PopevalError

    out: list[str] = [f"popeval check: {cfg.source or 'configuration'} (a dry run; nothing is computed or written)", ""]
    problems = 0
    for name, table, spec in (("dwse", DWSE_APPLICATIONS, cfg.admin.dwse_input), ("vdab", VDAB_TRAJECTORIES, cfg.admin.vdab_input)):
        path = cfg.path(getattr(cfg.admin, name))
        out.append(f"[admin.{name}] {path.name} -> {table.name}")
        con = duckdb.connect()
        # with pseudonymise = true raw INSZ keys are allowed; a throw-away key stands in for the study's
        # (nothing is kept), so the check needs no secret
        key = _CHECK_KEY if cfg.admin.pseudonymise else None
        if key is not None:
            from survey.insz import hmac_pads

            con.execute("CREATE TEMP TABLE _popeval_pads AS SELECT ?::BLOB AS ipad, ?::BLOB AS opad", list(hmac_pads(key)))
        try:
            plan = plan_input(con, path, table, spec, key=key)
        except PopevalError as exc:
            out += ["  PROBLEM: " + line for line in str(exc).splitlines()] + [""]
            problems += 1
            con.close()
            continue
        s = plan.source
        settings = ", ".join(f"{k}={v!r}" for k, v in s.settings.items())
        out.append(f"  format: {s.format} ({settings}); {s.rows:,} rows")
        if plan.assumed:
            out.append(f"  detected (not set in the TOML): looks {', '.join(plan.assumed)}")
        out.append("  popeval variable      <- the file's column")
        for var in table.names:
            col = plan.columns.get(var)
            how = plan.recodes.get(var, "")
            src = col if col is not None else f"(derived {plan.derived.get(var, '')})"
            ext = f"  extract {spec.extract[var]!r}" if var in spec.extract else ""
            fmt = f"  dates {plan.date_formats[var]}" if var in plan.date_formats else ""
            out.append(f"    {var:<20} <- {src}{ext}{fmt}" + (f"  [{how}]" if how else ""))
        if plan.ignored:
            out.append("  ignored columns: " + ", ".join(plan.ignored))
        for var in plan.recodes:
            rows = con.execute(
                f"SELECT {plan.raw[var]} AS r, {plan.text[var]} AS t, count(*) AS n FROM {plan.src} WHERE {plan.raw[var]} IS NOT NULL "
                f"GROUP BY r, t ORDER BY t IS NOT NULL, n DESC, r LIMIT {max_codes + 1}"
            ).fetchall()
            out.append(f"  codes of {var} (file code -> popeval code, rows):")
            for r, t, n in rows[:max_codes]:
                out.append(f"    {r!s:<40} -> {t if t is not None else 'UNMAPPED'}  ({n:,})")
            if len(rows) > max_codes:
                out.append("    ... (more codes; --codes N shows more)")
        try:
            ignored = scan_insz(con, plan, key)
            for c, n in ignored.items():
                out.append(f"  note: ignored column {c} holds {n:,} INSZ-like values (not ingested; values not shown)")
        except PopevalError as exc:
            out += ["  PROBLEM: " + line for line in str(exc).splitlines()]
            problems += 1
        try:
            check_codes(con, plan)
            validate_plan(con, plan)
            out.append("  validation: every row follows the data model")
        except PopevalError as exc:
            out += ["  PROBLEM: " + line for line in str(exc).splitlines()]
            problems += 1
        con.close()
        out.append("")
    survey_lines, survey_problems = _check_survey(cfg)
    out += [*survey_lines, "", _SETTINGS_HELP]
    return "\n".join(out), problems + survey_problems


def _check_survey(cfg: Any) -> tuple[list[str], int]:
    from survey.errors import PopevalError

    out = ["[survey]"]
    problems = 0
    m = cfg.survey.mapping()
    try:
        from analysis.pipeline import resolve_snapshot

        snap = resolve_snapshot(cfg) if cfg.survey.snapshot != "fetch" else None
    except PopevalError as exc:
        return out + ["  PROBLEM: " + line for line in str(exc).splitlines()], 1
    if snap is None:
        return [*out, "  snapshot: fetched at run time (not checked)"], 0
    from survey.parse import find_responses_file, read_responses

    try:
        resp_file = snap if snap.is_file() else find_responses_file(snap)
        raw = read_responses(resp_file)
        out.append(f"  responses: {resp_file.name}, {len(raw):,} rows, {len(raw.columns)} columns")
        out.append("  outcomes ([survey.outcomes.<name>]: nl, en, direction; analysed: [effects] outcomes):")
        for o in m.outcome_table():
            mark = "" if o["name"] in cfg.effects.outcomes else "  (not analysed)"
            out.append(f"    {o['name']:<20} <- {o['column']}  nl {o['nl']!r}, en {o['en']!r}, {o['direction']}{mark}")
        if m.empty:
            out.append("  questionnaire: popeval's own codes (no [survey.columns])")
        else:
            found = m.check_header([str(c) for c in raw.columns], resp_file)
            from survey.mapping import variable_headings

            heads = variable_headings(m.questionnaire())
            out.append("  popeval variable      <- the survey's column")
            for var in heads:
                out.append(f"    {var:<20} <- {found.get(var, '(not mapped)')}")
            for var, table in m.answers.items():
                if var in found:
                    seen = raw[found[var]].value_counts(dropna=True)
                    out.append(f"  answers of {var}: " + ", ".join(f"{k} -> {table.get(str(k), 'UNMAPPED')} ({n})" for k, n in seen.items()))
            m.apply(raw, resp_file)
    except PopevalError as exc:
        out += ["  PROBLEM: " + line for line in str(exc).splitlines()]
        problems += 1
    part = cfg.path(cfg.survey.participants) if cfg.survey.participants else (snap / "participants.json" if snap.is_dir() else None)
    if part is not None:
        try:
            from survey.parse import read_participants

            p = read_participants(part, key_attribute=cfg.survey.key_attribute, pseudo_key=_CHECK_KEY if cfg.admin.pseudonymise else None)
            out.append(f"  participants: {Path(part).name}, {len(p):,} rows, person key in {cfg.survey.key_attribute}")
        except PopevalError as exc:
            out += ["  PROBLEM: " + line for line in str(exc).splitlines()]
            problems += 1
    return out, problems
