"""Describe an input file in the study TOML: reading settings, column mapping, code tables, rules.

An input in popeval's own schema needs no description.  An input as an agency delivers it is
described per file in the study TOML (``[admin.dwse]``, ``[admin.vdab]``)::

    [admin.dwse]
    file = "../data_raw/admin/aanvragen.sav"
    format = "sav"                        # csv | parquet | sav | dta | xlsx (default: the extension)
    true_values = ["ja"]                  # flags
    false_values = ["nee"]

    [admin.dwse.columns]                  # popeval variable = "the file's column"
    person_key = "rijksregisternummer_pseudo"
    incentive = "maatregel"
    educ = "onderwijsniveau"

    [admin.dwse.codes.incentive]          # the file's code = popeval's code
    Opleidingscheques = "OC"

    [admin.dwse.rules]                    # built-in recodings
    educ = "isced2011"                    # ISCED 2011 level 0-8 -> laag/midden/hoog

Everything runs as DuckDB SQL over the file's table (see :mod:`analysis.population.sources`):
the mapping is one ``SELECT``; every check finds its first offending row with a query.  Every code
seen and not mapped is an error listing the codes with their counts.

Built-in rules (:data:`RULES`)
------------------------------
``isced2011``
    ISCED 2011 level 0-8 -> ``laag`` (0 to ``isced_cuts[0]``, default 2), ``midden`` (to
    ``isced_cuts[1]``, default 4), ``hoog`` (up to 8).
``nace_bel``
    A NACE-BEL code (``86.101``, ``86101``, ``86.1`` or ``86``; a section letter is kept) -> its NACE
    section.  When ``sector`` is not mapped it is derived from the section
    (:data:`survey.datamodel.NACE_TO_SECTOR`); when both are given they are cross-checked.
``headcount``
    A number of employees -> ``1-9``, ``10-49``, ``50-249``, ``250+``.
``nis``
    A NIS code of a province (``10000``, ``20001``, ``30000``, ``40000``, ``70000``; ``04000`` or
    ``21000`` for Brussels) or of a municipality (by its first two digits) -> the province code.
    Walloon provinces are not in the data model: they stay unmapped unless a code table maps them.
``school_year``
    ``2021-2022`` (or ``2021-22``) -> ``2021-22``.  When ``school_year`` is not mapped at all it is
    derived from ``application_date`` (a school year runs from 1 September to 31 August).

Checks across fields (:data:`CROSS_CHECKS`) are counted per input.  The rule: a check that fails on
at most ``max_inconsistent_share`` of the rows (default 0.01) is a warning, counted in the ingest
report and in the ``ingest_checks`` table (the rows are kept); above that share it is an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from survey.datamodel import COMPANY_SIZE, NACE_TO_SECTOR, PROVINCES, Table, codes
from survey.errors import ConfigError

__all__ = ["CROSS_CHECKS", "RULES", "InputSpec", "input_from_toml", "mapping_hash"]

#: Built-in recoding rules and the variable each applies to.
RULES: dict[str, str] = {
    "isced2011": "educ",
    "nace_bel": "nace",
    "headcount": "company_size",
    "nis": "province",
    "school_year": "school_year",
}

#: Checks across fields, per table: name -> description.
CROSS_CHECKS: dict[str, dict[str, str]] = {
    "dwse_applications": {
        "date_outside_school_year": "application_date outside its school_year (1 September to 31 August)",
        "impossible_age": "age at application (calendar year minus birth_year) below 16 or above 75",
        "nace_sector_mismatch": "NACE section and sector disagree (DWSE's classification of sections)",
    },
    "vdab_trajectories": {
        "end_before_start": "end_date before start_date",
    },
}

_SETTING_DOCS: dict[str, str] = {
    "file": "path of the file, relative to the study TOML",
    "format": "csv | parquet | sav | dta | xlsx (default: from the extension)",
    "sheet": "xlsx: the sheet to read (default: the first)",
    "header_row": "csv/xlsx: the 1-based row holding the column names (default: detected, the first non-blank row)",
    "encoding": "csv: utf-8 | latin-1 (default: detected)",
    "delimiter": "csv: the field separator (default: detected among , ; tab |)",
    "decimal": "csv: the decimal mark, . or , (default: detected)",
    "date_format": "dates as strptime format, e.g. %d/%m/%Y (default: detected, ISO or dd/mm/yyyy)",
    "true_values": "extra spellings of true for flags, e.g. ['ja', 'J']",
    "false_values": "extra spellings of false for flags, e.g. ['nee', 'N']",
    "missing_values": "values that mean missing, e.g. ['NA', '-']",
    "value_labels": "sav/dta: read value labels instead of the stored codes (default true)",
    "max_inconsistent_share": "checks across fields: share of rows above which a warning becomes an error (default 0.01)",
    "isced_cuts": "isced2011 rule: highest level of laag and of midden (default [2, 4])",
    "columns": "table: popeval variable = the file's column",
    "extract": "table: popeval variable = a regular expression; its first group (or the whole match) is the value",
    "codes": "tables per variable: the file's code = popeval's code",
    "rules": "table: popeval variable = a built-in rule (isced2011, nace_bel, headcount, nis, school_year)",
    "patterns": "table: popeval variable = a regular expression every value must match ('' for none)",
}


@dataclass(frozen=True)
class InputSpec:
    """How to read and map one input file (see the module docstring; every field is a TOML setting)."""

    file: str = ""
    format: str = ""
    sheet: str = ""
    header_row: int = 0
    encoding: str = ""
    delimiter: str = ""
    decimal: str = ""
    date_format: str = ""
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    missing_values: tuple[str, ...] = ()
    value_labels: bool = True
    max_inconsistent_share: float = 0.01
    isced_cuts: tuple[int, int] = (2, 4)
    columns: Mapping[str, str] = field(default_factory=dict)
    extract: Mapping[str, str] = field(default_factory=dict)
    codes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    rules: Mapping[str, str] = field(default_factory=dict)
    patterns: Mapping[str, str] = field(default_factory=dict)

    @property
    def mapped(self) -> bool:
        """Whether the file is described by a mapping (else it is in popeval's own schema)."""
        return bool(self.columns or self.extract or self.codes or self.rules)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for manifests and hashes)."""
        return json.loads(json.dumps(asdict(self)))


def mapping_hash(*specs: InputSpec) -> str:
    """SHA-256 of the mappings and reading settings (the file paths excluded)."""
    blob = [{k: v for k, v in s.to_dict().items() if k != "file"} for s in specs]
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


def input_from_toml(data: Any, where: str, table: Table, source: Path | None = None) -> InputSpec:
    """Build an :class:`InputSpec` from ``[admin.<name>]`` (a path string or a table)."""
    if isinstance(data, str):
        return InputSpec(file=data)
    _check_settings(data, where, source)
    types = {f.name: str(f.type) for f in fields(InputSpec)}
    variables = set(table.names) | {"sector"}
    out: dict[str, Any] = {}
    for key, value in data.items():
        p = f"{where}.{key}"
        if key in ("columns", "extract", "rules", "patterns"):
            out[key] = _variable_table(key, value, p, table, variables, source)
        elif key == "codes":
            out[key] = _code_tables(value, p, table, variables, source)
        else:
            out[key] = _setting_value(key, types[key], value, p, source)
    if "file" not in out:
        raise _bad(f"{where}.file", "the path of the file", "nothing", f'add file = "..." under [{where}]', source)
    return InputSpec(**out)


def _check_settings(data: Any, where: str, source: Path | None) -> None:
    """Refuse an input description that is not a table, or a table with a setting :class:`InputSpec` lacks."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            "Invalid input description in the study configuration",
            file=source,
            param=where,
            expected='a path, or a table with file = "..." and the reading and mapping settings',
            found=repr(data),
            hint=f'write {where} = "path/to/file.csv" or a [{where}] table',
        )
    known = {f.name for f in fields(InputSpec)}
    for key in data:
        if key not in known:
            raise ConfigError(
                "Unknown setting in the study configuration",
                file=source,
                param=f"{where}.{key}",
                expected="settings of an input: " + "; ".join(f"{k} ({v})" for k, v in _SETTING_DOCS.items()),
                found=key,
                hint="check the spelling; `popeval init` writes a commented template",
            )


def _variable_table(key: str, value: Any, p: str, table: Table, variables: set[str], source: Path | None) -> dict[str, str]:
    """``columns``, ``extract``, ``rules`` or ``patterns``: a table of popeval variable = text."""
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise _bad(p, "a table of variable = \"text\"", value, f"[{p}] followed by lines like educ = \"onderwijsniveau\"", source)
    for var in value:
        if var not in variables:
            raise _bad(f"{p}.{var}", f"a variable of {table.name}: " + ", ".join(table.names), var, "see data_raw/README.md for popeval's variables", source)
    if key == "rules":
        for var, rule in value.items():
            if rule not in RULES:
                raise _bad(f"{p}.{var}", "one of the rules " + ", ".join(RULES), rule, "see `popeval init` or data_raw/README.md for the rules", source)
            if RULES[rule] != var:
                raise _bad(f"{p}.{var}", f"rule {rule} applies to {RULES[rule]}", f"{var} = {rule!r}", f"write {RULES[rule]} = {rule!r}", source)
    if key in ("extract", "patterns"):
        for var, pat in value.items():
            try:
                re.compile(pat)
            except re.error as exc:
                raise _bad(f"{p}.{var}", "a regular expression", pat, f"fix the expression ({exc})", source) from None
    return dict(value)


def _code_tables(value: Any, p: str, table: Table, variables: set[str], source: Path | None) -> dict[str, dict[str, str]]:
    """``codes``: per variable a table of the file's code = popeval's code (checked against the vocabulary)."""
    if not isinstance(value, Mapping):
        raise _bad(p, "tables [codes.<variable>] of code = code", value, f"[{p}.status] then Goedgekeurd = \"goedgekeurd\"", source)
    tables: dict[str, dict[str, str]] = {}
    for var, tab in value.items():
        if var not in variables:
            raise _bad(f"{p}.{var}", f"a variable of {table.name}", var, "see data_raw/README.md", source)
        if not isinstance(tab, Mapping) or not all(isinstance(v, str) for v in tab.values()):
            raise _bad(f"{p}.{var}", "a table of \"file code\" = \"popeval code\"", tab, 'e.g. Goedgekeurd = "goedgekeurd"', source)
        col = table.column(var) if var in table.names else None
        allowed = codes(col.vocabulary) if col is not None and col.vocabulary else None
        for k, v in tab.items():
            if allowed is not None and v not in allowed:
                raise _bad(f"{p}.{var}.{k}", "one of " + ", ".join(allowed), v, f"map {k!r} to one of popeval's codes for {var}", source)
        tables[var] = {str(k): v for k, v in tab.items()}
    return tables


def _setting_value(key: str, typ: str, value: Any, p: str, source: Path | None) -> Any:
    """A reading setting, checked against the type of its :class:`InputSpec` field (``typ``)."""
    if typ.startswith("tuple[str"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(p, "a list of strings", value, f'e.g. {key} = ["ja"]', source)
        return tuple(value)
    if typ.startswith("tuple[int"):
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value) and 0 <= value[0] < value[1] < 8):
            raise _bad(p, "two levels [low, mid] with 0 <= low < mid < 8", value, "e.g. isced_cuts = [2, 4]", source)
        return tuple(value)
    if typ == "bool":
        if not isinstance(value, bool):
            raise _bad(p, "true or false", value, "write true or false without quotes", source)
        return value
    if typ == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _bad(p, "a whole number >= 0", value, "write a number without quotes", source)
        return value
    if typ == "float":
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise _bad(p, "a share between 0 and 1", value, "e.g. 0.01", source)
        return float(value)
    return _text_setting(key, value, p, source)


#: The accepted values of the text settings that have a fixed set of them.
_ENCODINGS = ("utf-8", "utf8", "latin-1", "latin1", "iso-8859-1", "cp1252", "utf-8-sig")


def _text_setting(key: str, value: Any, p: str, source: Path | None) -> str:
    """A text setting (``file``, ``format``, ``sheet``, ``encoding``, ``delimiter``, ``decimal``, ``date_format``)."""
    if not isinstance(value, str):
        raise _bad(p, "a string", value, "quote the value", source)
    if key == "format" and value not in ("csv", "parquet", "sav", "dta", "xlsx"):
        raise _bad(p, "one of csv, parquet, sav, dta, xlsx", value, "or leave it out to use the file extension", source)
    if key == "decimal" and value not in (".", ","):
        raise _bad(p, ". or ,", value, 'decimal = ","', source)
    if key == "encoding" and value.lower().replace("_", "-") not in _ENCODINGS:
        raise _bad(p, "utf-8 or latin-1", value, 'encoding = "latin-1"', source)
    return value


def _bad(param: str, expected: str, found: Any, hint: str, source: Path | None) -> ConfigError:
    return ConfigError("Invalid setting in the study configuration", file=source, param=param, expected=expected, found=repr(found), hint=hint)


# --------------------------------------------------------------------------- SQL pieces

#: NACE Rev. 2 divisions (first two digits) -> section.
_NACE_DIVISIONS: tuple[tuple[int, int, str], ...] = (
    (1, 3, "A"), (5, 9, "B"), (10, 33, "C"), (35, 35, "D"), (36, 39, "E"), (41, 43, "F"), (45, 47, "G"),
    (49, 53, "H"), (55, 56, "I"), (58, 63, "J"), (64, 66, "K"), (68, 68, "L"), (69, 75, "M"), (77, 82, "N"),
    (84, 84, "O"), (85, 85, "P"), (86, 88, "Q"), (90, 93, "R"), (94, 96, "S"), (97, 98, "T"), (99, 99, "U"),
)
_NIS_PROVINCE = {"10000": "ANT", "20001": "VBR", "30000": "WVL", "40000": "OVL", "70000": "LIM", "04000": "BRU", "4000": "BRU", "21000": "BRU"}
_NIS_PREFIX = {"11": "ANT", "12": "ANT", "13": "ANT", "21": "BRU", "23": "VBR", "24": "VBR", "31": "WVL", "32": "WVL", "33": "WVL",
               "34": "WVL", "35": "WVL", "36": "WVL", "37": "WVL", "38": "WVL", "41": "OVL", "42": "OVL", "43": "OVL", "44": "OVL",
               "45": "OVL", "46": "OVL", "71": "LIM", "72": "LIM", "73": "LIM"}


def rule_sql(rule: str, v: str, spec: InputSpec) -> str:
    """SQL for a built-in rule applied to the text expression ``v`` (NULL when the value is unmapped)."""
    if rule == "isced2011":
        lo, mid = spec.isced_cuts
        n = f"TRY_CAST(trim({v}) AS INTEGER)"
        return (f"CASE WHEN NOT regexp_full_match(trim({v}), '\\d') THEN NULL WHEN {n} <= {lo} THEN 'laag' "
                f"WHEN {n} <= {mid} THEN 'midden' WHEN {n} <= 8 THEN 'hoog' END")
    if rule == "nace_bel":
        t = f"trim({v})"
        sections = [next((sec for a, b, sec in _NACE_DIVISIONS if a <= d <= b), None) for d in range(1, 100)]
        table = "[" + ", ".join("NULL" if x is None else f"'{x}'" for x in sections) + "]"
        div = f"TRY_CAST(substr({t}, 1, 2) AS INTEGER)"
        return (f"CASE WHEN regexp_full_match({t}, '[A-U]') THEN {t} "
                f"WHEN regexp_full_match({t}, '\\d{{2}}(\\.?\\d{{1,3}})?') AND {div} >= 1 THEN ({table})[{div}] END")
    if rule == "headcount":
        n = f"TRY_CAST(replace(trim({v}), ',', '.') AS DOUBLE)"
        c = codes(COMPANY_SIZE)
        return (f"CASE WHEN {n} IS NULL OR {n} < 1 OR {n} <> floor({n}) THEN NULL WHEN {n} < 10 THEN '{c[0]}' "
                f"WHEN {n} < 50 THEN '{c[1]}' WHEN {n} < 250 THEN '{c[2]}' ELSE '{c[3]}' END")
    if rule == "nis":
        t = f"trim({v})"
        exact = " ".join(f"WHEN {t} = '{k}' THEN '{p}'" for k, p in _NIS_PROVINCE.items())
        pref = " ".join(f"WHEN substr({t}, 1, 2) = '{k}' THEN '{p}'" for k, p in _NIS_PREFIX.items())
        return f"CASE WHEN NOT regexp_full_match({t}, '\\d{{4,5}}') THEN NULL {exact} WHEN length({t}) <> 5 THEN NULL {pref} END"
    if rule == "school_year":
        t = f"trim({v})"
        return (f"CASE WHEN regexp_full_match({t}, '\\d{{4}}[-/]\\d{{4}}') AND TRY_CAST(substr({t}, 6, 4) AS INTEGER) = TRY_CAST(substr({t}, 1, 4) AS INTEGER) + 1 "
                f"THEN substr({t}, 1, 4) || '-' || substr({t}, 8, 2) "
                f"WHEN regexp_full_match({t}, '\\d{{4}}-\\d{{2}}') AND (TRY_CAST(substr({t}, 1, 4) AS INTEGER) + 1) % 100 = TRY_CAST(substr({t}, 6, 2) AS INTEGER) "
                f"THEN {t} END")
    raise KeyError(rule)  # pragma: no cover - rules are checked when the TOML is read


def sector_from_nace_sql(nace: str) -> str:
    """SQL: DWSE's sector of a NACE section expression."""
    cases = " ".join(f"WHEN {nace} = '{s}' THEN '{sec}'" for s, sec in NACE_TO_SECTOR.items())
    return f"CASE {cases} END"


def school_year_from_date_sql(date: str) -> str:
    """SQL: the school year (1 September to 31 August) of a DATE expression, as ``2021-22``."""
    y = f"(year({date}) - CASE WHEN month({date}) < 9 THEN 1 ELSE 0 END)"
    return f"CAST({y} AS VARCHAR) || '-' || lpad(CAST(({y} + 1) % 100 AS VARCHAR), 2, '0')"


PROVINCE_CODES = codes(PROVINCES)
