"""``popeval init``: write a commented study TOML (and a survey mapping skeleton) from the files given.

It reads each admin file (in memory, nothing else is written), guesses which column holds which
popeval variable from common Dutch and English names, suggests built-in rules and code tables from
the values it sees (matching popeval's codes and their Dutch labels, case-insensitively), and writes
every setting with a comment.  Lines it cannot fill in are left commented out for you to complete;
``popeval check --config study.toml`` then shows what the mapping does.  Values of a person-key
column are never shown; sample values that look like an INSZ are masked.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "study_template"]

#: Column names popeval recognises per variable (lower case; the first match wins).
NAME_GUESSES: dict[str, tuple[str, ...]] = {
    "application_id": ("application_id", "aanvraagnummer", "aanvraag_id", "aanvraagnr", "dossiernummer"),
    "person_key": ("person_key", "rijksregisternummer_pseudo", "pseudo_id", "pseudoniem", "klant_id", "insz", "rrn"),
    "incentive": ("incentive", "maatregel", "incentive_type"),
    "school_year": ("school_year", "schooljaar"),
    "application_date": ("application_date", "aanvraagdatum", "datum_aanvraag"),
    "status": ("status", "beslissing"),
    "training_id": ("training_id", "opleidingsnummer", "opleiding_id", "opleidingsnr"),
    "training_domain": ("training_domain", "opleidingsdomein", "domein"),
    "in_databank": ("in_databank", "in_opleidingsdatabank"),
    "pop_based": ("pop_based", "pop_attest", "pop_gebaseerd"),
    "sex": ("sex", "geslacht"),
    "birth_year": ("birth_year", "geboortejaar"),
    "educ": ("educ", "onderwijsniveau", "opleidingsniveau", "isced"),
    "nace": ("nace", "nace_code", "nacebel", "nace_bel"),
    "sector": ("sector",),
    "company_size": ("company_size", "aantal_werknemers", "bedrijfsgrootte", "grootte_onderneming"),
    "province": ("province", "provincie_nis", "provincie", "nis_code"),
    "statute": ("statute", "statuut"),
    "trajectory_id": ("trajectory_id", "trajectnummer", "traject_id"),
    "start_date": ("start_date", "startdatum"),
    "end_date": ("end_date", "einddatum"),
    "loopbaancentrum": ("loopbaancentrum", "centrum"),
    "pop_made": ("pop_made", "pop_opgemaakt"),
    "pop_attest": ("pop_attest", "popattest"),
    "attest_training_id": ("attest_training_id", "opleiding_attest", "attest_opleiding"),
}
_RULE_SHAPES = {
    "educ": ("isced2011", r"[0-8](\.0)?"),
    "nace": ("nace_bel", r"\d{2}(\.?\d{1,3})?"),
    "company_size": ("headcount", r"\d+(\.0)?"),
    "province": ("nis", r"\d{4,5}"),
    "school_year": ("school_year", r"\d{4}[-/]\d{4}"),
}
_FLAG_WORDS = {"ja": True, "nee": False, "yes": True, "no": False, "oui": True, "non": False, "waar": True, "onwaar": False}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``popeval init``."""
    p.add_argument("--dwse", required=True, help="the DWSE applications file as delivered (csv, parquet, sav, dta, xlsx)")
    p.add_argument("--vdab", required=True, help="the VDAB trajectories file as delivered")
    p.add_argument("--snapshot", default="latest", help="the survey snapshot folder (default: latest under snapshots_dir)")
    p.add_argument("--participants", default="", help="a participants file (LimeSurvey GUI CSV or participants.json)")
    p.add_argument("--lss", default=None, help="the survey's .lss: write a [survey.columns] skeleton from it")
    p.add_argument("--fieldmap", default=None, help="the survey's fieldmap.json (instead of --lss)")
    p.add_argument("--out", default="study.toml", help="the study TOML to write (default study.toml; never overwritten)")
    p.add_argument("--name", default="study", help="the study name")


def run(args: argparse.Namespace) -> int:
    """Write the template."""
    from survey.errors import ConfigError

    out = Path(args.out)
    if out.exists():
        raise ConfigError("The study TOML exists already", file=out, param="--out", expected="a new file", found="an existing file",
                          hint="choose another --out; popeval init never overwrites")
    fieldmap = None
    if args.lss:
        from survey.lss import fieldmap_from_lss

        fieldmap = fieldmap_from_lss(Path(args.lss).read_bytes())
    elif args.fieldmap:
        import json

        fieldmap = json.loads(Path(args.fieldmap).read_text(encoding="utf-8"))
    elif Path(args.snapshot).is_dir() and (Path(args.snapshot) / "responses.csv").is_file():
        # no .lss: the export's own headings make the skeleton
        from survey.parse import FIXED_COLUMNS, read_responses

        header = [str(c) for c in read_responses(Path(args.snapshot) / "responses.csv").columns]
        own = {h for h in header if h in FIXED_COLUMNS}
        fieldmap = {h: h for h in header if h not in own}
    text = study_template(Path(args.dwse), Path(args.vdab), base=out.resolve().parent, name=args.name, snapshot=args.snapshot,
                          participants=args.participants, fieldmap=fieldmap)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}; complete the commented lines, then run `popeval check --config {out}`")
    return 0


def _rel(p: Path, base: Path) -> str:
    import os

    try:
        return Path(os.path.relpath(p.resolve(), base)).as_posix()
    except ValueError:  # another drive
        return p.resolve().as_posix()


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class _Source:
    """An admin extract loaded into DuckDB for ``popeval init`` to look at."""

    con: Any
    #: What :func:`analysis.population.sources.load_source` read (format, settings, what it assumed).
    info: Any
    #: The data model's table the extract is for.
    table: Any
    #: The extract's columns and their DuckDB types.
    types: dict[str, str]

    @property
    def relation(self) -> str:
        """The DuckDB view holding the extract."""
        return f"_src_{self.table.name}"

    def text(self, column: str) -> str:
        """SQL for ``column``'s values as text."""
        from analysis.population.ingest import text_sql

        return text_sql(column, self.types[column], self.info.format)


@dataclass(frozen=True)
class _Detected:
    """What the extract's values suggest for its settings: flag words, built-in rules, codes, extractions."""

    flags_true: set[str] = field(default_factory=set)
    flags_false: set[str] = field(default_factory=set)
    rules: dict[str, str] = field(default_factory=dict)
    codes: dict[str, list[str]] = field(default_factory=dict)
    extract: dict[str, str] = field(default_factory=dict)


def _input_section(path: Path, key: str, base: Path) -> list[str]:
    """The commented ``[admin.<key>]`` section for the extract at ``path``, from what its columns hold."""
    import duckdb

    from analysis.population.mapping import InputSpec
    from analysis.population.sources import load_source
    from survey.datamodel import DWSE_APPLICATIONS, VDAB_TRAJECTORIES

    table = DWSE_APPLICATIONS if key == "dwse" else VDAB_TRAJECTORIES
    con = duckdb.connect()
    try:
        info = load_source(con, path, InputSpec(file=str(path)), table.name)
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE _src_{table.name}").fetchall() if r[0] != "source_row"}
        src = _Source(con=con, info=info, table=table, types=types)
        lines = _source_header(src, path, key, base)
        samples = _value_samples(src)
        columns = _guess_columns(table, types)
        found = _detect(src, columns, samples)
        if found.flags_true:
            lines.append(f"true_values = [{', '.join(_toml_str(v) for v in sorted(found.flags_true))}]")
        if found.flags_false:
            lines.append(f"false_values = [{', '.join(_toml_str(v) for v in sorted(found.flags_false))}]")
        lines += _column_listing(types, samples, columns)
        lines += _columns_section(key, table, columns)
        lines += _recoding_sections(key, table, found)
        lines.append("")
        return lines
    finally:
        con.close()


def _source_header(src: _Source, path: Path, key: str, base: Path) -> list[str]:
    """The section's head: the file, its format and the reading settings detected, as comments to adjust."""
    info = src.info
    lines = [f"[admin.{key}]", f"file = {_toml_str(_rel(path, base))}"]
    lines.append(f"# format = {_toml_str(info.format)}        # csv | parquet | sav | dta | xlsx (default: the extension)")
    for k, v in info.settings.items():
        lines.append(f"# {k} = {_toml_str(str(v)) if isinstance(v, str) else str(v).lower()}" + ("   # detected" if info.assumed else ""))
    if info.assumed:
        lines.append(f"# popeval detected: looks {', '.join(info.assumed)}")
    lines += [
        "# date_format = \"%d/%m/%Y\"   # dates as strptime format (default: ISO, or dd/mm/yyyy when every value is)",
        "# missing_values = [\"NA\"]    # values meaning missing",
        "# max_inconsistent_share = 0.01  # checks across fields: above this share of rows a warning becomes an error",
    ]
    return lines


def _value_samples(src: _Source) -> dict[str, list[tuple[str, int]]]:
    """Each column's 13 most frequent values (as text) with their counts."""
    samples: dict[str, list[tuple[str, int]]] = {}
    for c in src.types:
        rows = src.con.execute(f"SELECT v, count(*) n FROM (SELECT {src.text(c)} v FROM {src.relation}) WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT 13").fetchall()
        samples[c] = [(str(v), int(n)) for v, n in rows]
    return samples


def _guess_columns(table: Any, types: Mapping[str, str]) -> dict[str, str]:
    """popeval's variable -> the file's column, by the usual names (:data:`NAME_GUESSES`); each column used once."""
    lower = {c.lower().strip(): c for c in types}
    columns: dict[str, str] = {}
    for var in table.names:
        for guess in NAME_GUESSES.get(var, (var,)):
            if guess in lower and lower[guess] not in columns.values():
                columns[var] = lower[guess]
                break
    return columns


def _detect(src: _Source, columns: Mapping[str, str], samples: Mapping[str, list[tuple[str, int]]]) -> _Detected:
    """Flag words of the 0/1 columns, values shaped for a built-in rule, codes outside the vocabulary, career centres to extract."""
    from survey.sqlcheck import q

    found = _Detected()
    for var, col in columns.items():
        c = src.table.column(var)
        vals = [v for v, _ in samples[col]]
        n_distinct = int(src.con.execute(f"SELECT count(DISTINCT {q(col)}) FROM {src.relation}").fetchall()[0][0])
        if c.dtype == "bool":
            for v in vals:
                w = _FLAG_WORDS.get(v.lower())
                if w is True:
                    found.flags_true.add(v)
                elif w is False:
                    found.flags_false.add(v)
        if var in _RULE_SHAPES and vals and all(re.fullmatch(_RULE_SHAPES[var][1], v) for v in vals):
            found.rules[var] = _RULE_SHAPES[var][0]
        elif c.dtype == "category" and c.vocabulary and n_distinct <= 60:
            allowed = {x.code for x in c.vocabulary}
            if not set(vals) <= allowed or n_distinct > len(vals):
                found.codes[var] = [str(r[0]) for r in src.con.execute(f"SELECT DISTINCT {src.text(col)} v FROM {src.relation} WHERE v IS NOT NULL ORDER BY v").fetchall()]
        if var == "loopbaancentrum" and vals and not all(re.fullmatch(r"LBC\d{3}", v) for v in vals) and all(re.search(r"LBC\d{3}", v) for v in vals):
            found.extract[var] = r"LBC\d{3}"
    return found


def _column_listing(types: Mapping[str, str], samples: Mapping[str, list[tuple[str, int]]], columns: Mapping[str, str]) -> list[str]:
    """The file's columns with their types and most frequent values, as comments (person keys and INSZ-like values hidden)."""
    import pandas as pd

    from survey.insz import looks_like_insz

    lines = ["", "# The file's columns and their most frequent values (person keys and INSZ-like values not shown):"]
    key_cols = {columns.get("person_key")}
    for c in types:
        if c in key_cols:
            shown = "(person key; values not shown)"
        else:
            vals = [v for v, _ in samples[c]]
            masked: list[bool] = looks_like_insz(pd.Series(vals, dtype="string")).tolist() if vals else []
            shown = ", ".join("[INSZ-like]" if m else v[:30] for v, m in zip(vals[:8], masked, strict=False))
        lines.append(f"#   {c} ({types[c]}): {shown}")
    return lines


def _columns_section(key: str, table: Any, columns: Mapping[str, str]) -> list[str]:
    """``[admin.<key>.columns]``: the columns found, and a line to fill in for each one not found."""
    lines = ["", f"[admin.{key}.columns]", "# popeval variable = \"the file's column\""]
    for var in table.names:
        c = table.column(var)
        if var in columns:
            lines.append(f"{var} = {_toml_str(columns[var])}   # {c.en}")
        elif var == "sector" and "nace" in columns:
            lines.append(f"# {var} = \"\"   # {c.en}: not found; derived from nace (cross-checked when given)")
        else:
            lines.append(f"# {var} = \"\"   # {c.en}: NOT FOUND - name the file's column")
    return lines


def _recoding_sections(key: str, table: Any, found: _Detected) -> list[str]:
    """``[admin.<key>.rules]``, ``.extract`` and ``.codes.<variable>`` for what the values suggest."""
    lines: list[str] = []
    if found.rules:
        lines += ["", f"[admin.{key}.rules]", "# built-in recodings: isced2011, nace_bel, headcount, nis, school_year"]
        lines += [f"{var} = {_toml_str(r)}" for var, r in found.rules.items()]
    if found.extract:
        lines += ["", f"[admin.{key}.extract]", "# a regular expression; its first group (or the whole match) is the value"]
        lines += [f"{var} = {_toml_str(p)}" for var, p in found.extract.items()]
    for var, seen in found.codes.items():
        c = table.column(var)
        by_code = {x.code.lower(): x.code for x in c.vocabulary or ()}
        by_label = {x.nl.lower(): x.code for x in c.vocabulary or ()} | {x.en.lower(): x.code for x in c.vocabulary or ()}
        lines += ["", f"[admin.{key}.codes.{var}]", f"# the file's code = popeval's code (one of {', '.join(x.code for x in c.vocabulary or ())})"]
        for v in seen:
            target = by_code.get(v.lower()) or by_label.get(v.lower())
            lines.append(f"{_toml_str(v)} = {_toml_str(target)}" if target else f"# {_toml_str(v)} = \"\"   # fill in")
    return lines


def study_template(dwse: Path, vdab: Path, *, base: Path, name: str = "study", snapshot: str = "latest", participants: str = "",
                   fieldmap: dict[str, Any] | None = None) -> str:
    """The commented study TOML for these files."""
    from survey.mapping import skeleton

    lines = [
        "# Study configuration written by `popeval init`. Paths are relative to this file.",
        "# Complete the commented lines marked NOT FOUND / fill in, then run `popeval check --config <this file>`.",
        "",
        "[study]",
        f"name = {_toml_str(name)}",
        "seed = 2023",
        "language = \"nl\"                 # nl | en: the report's language",
        "disclosure_threshold = 5        # counts below this are suppressed in every published table",
        "derived_dir = \"data_derived\"    # caches, the study database, run folders",
        "# school_years = [\"2021-22\", \"2022-23\"]   # the study window (default 2019-20 to 2023-24)",
        "",
        "[survey]",
        "survey_id = 0                   # the LimeSurvey survey id (FILL IN when snapshot = \"latest\" or \"fetch\")",
        f"snapshot = {_toml_str(snapshot)}             # a snapshot folder, \"latest\" (under snapshots_dir) or \"fetch\"",
        "snapshots_dir = \"data_raw/survey\"",
        (f"participants = {_toml_str(participants)}   # LimeSurvey's participants CSV (GUI export) or participants.json"
         if participants else "# participants = \"participants.csv\"   # default: the snapshot's participants.json"),
        "key_attribute = \"attribute_1\"   # the participant attribute holding the person key",
        "",
    ]
    if fieldmap:
        lines += ["# An existing survey: map popeval's variables onto its columns and answer codes.", skeleton(fieldmap)]
    else:
        lines += ["# An existing survey with its own codes: [survey.columns] (popeval variable = the survey's column),",
                  "# [survey.answers.<variable>] (the survey's code = popeval's code, \"99\" = weet niet) and",
                  "# [survey.outcomes.<name>] (nl, en, direction; a name of its own defines the survey's own outcomes).",
                  "# `popeval init --lss survey.lss` (or --fieldmap) writes them; data_raw/README.md has a worked example.", ""]
    lines += [
        "[admin]",
        "pseudonymise = false            # true: raw INSZ in the extracts and participants become HMAC-SHA256 keyed hashes (POPEVAL_PSEUDO_KEY)",
        "",
    ]
    lines += _input_section(dwse, "dwse", base)
    lines += _input_section(vdab, "vdab", base)
    lines += [
        "[weighting]",
        "method = \"rake\"                 # rake | poststratify | linear | logit | none",
        "margins = [[\"pop\", \"educ\"], [\"pop\", \"age_band\"], [\"pop\", \"sex\"], [\"pop\", \"sector\"], [\"pop\", \"company_size\"]]",
        "min_cell = 5",
        "",
        "[matching]",
        "covariates = [\"educ\", \"age_band\", \"sex\", \"sector\", \"company_size\"]",
        "ratio = 1",
        "replace = true",
        "caliper = 0.2                   # SDs of the propensity score (probability scale, unweighted SD over all respondents)",
        "m_order = \"largest\"             # largest | smallest | random | data",
        "",
        "[effects]",
        "# outcomes = [\"stronger\", \"job_better\", \"promotion\", \"satisfaction\"]   # the outcomes analysed; default: every outcome",
        "#   of the survey (popeval's four, or the survey's own defined in [survey.outcomes.<name>])",
        "estimand = \"ATT\"                # ATT | ATE",
        "methods = [\"matching\", \"regression\", \"ipw\", \"aipw\", \"ologit\", \"absorbed\", \"naive\"]",
        "replicates = 100                # end-to-end replicates (0: model-based SEs only)",
        "",
        "[report]",
        "formats = [\"html\", \"pdf\", \"docx\"]",
        "",
        "# The POP part (optional): uncomment to read a sample of POPs; `popeval run` then draws the sample,",
        "# writes the coding sheets and, once they are coded, adds the section on the POP and the POP-attest.",
        "# [plans]",
        "# texts = \"data_raw/plans/pops\"               # folder of LBT*.txt/.docx/.pdf, or a table (trajectory_id, text)",
        "# trainings = \"data_raw/plans/trainings.csv\"  # training catalogue: training_id, training_name",
        "# strata = [\"incentive\", \"centre_size\"]      # among incentive, centre_size, loopbaancentrum, school_year",
        "# sample_size = 300",
        "# coders = [\"A\", \"B\"]",
        "# previous = \"\"                               # the previous wave's bundle, for what changed",
        "",
    ]
    return "\n".join(lines)
