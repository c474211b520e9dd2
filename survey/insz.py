"""Belgian national register numbers (INSZ/NISS, including bis numbers): detection and keyed hashing.

A raw INSZ must never pass ingest.  :func:`looks_like_insz` finds values that are valid INSZ numbers
(11 digits, possibly written ``YY.MM.DD-SSS.CC``, with a valid mod-97 check for births before or from
2000, bis numbers with month + 20 or + 40 included).  :func:`pseudonymise` turns them into the study's
pseudonymous keys with HMAC-SHA256 under a secret key taken from the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from survey.errors import ConfigError

__all__ = [
    "PSEUDO_KEY_ENV",
    "hmac_pads",
    "is_valid_insz",
    "looks_like_insz",
    "normalise_insz",
    "pseudo_key_from_env",
    "pseudonymise",
    "pseudonymise_file",
    "synthetic_insz",
]

#: The environment variable that holds the pseudonymisation secret.
PSEUDO_KEY_ENV = "POPEVAL_PSEUDO_KEY"

_SEPARATORS = re.compile(r"[\s.\-/]")


def normalise_insz(value: str) -> str:
    """Strip the separators people write in an INSZ (``93.05.18-223.61`` -> ``93051822361``)."""
    return _SEPARATORS.sub("", value)


def is_valid_insz(value: str) -> bool:
    """Whether ``value`` is a valid INSZ or bis number (checksum and month range)."""
    return bool(looks_like_insz(pd.Series([value])).iloc[0])


def _has_ascii_letter(values: pd.Series) -> np.ndarray:
    """Per value: it has an ASCII letter (missing values: ``True``, they are no INSZ either)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = values if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_string(values.dtype.pyarrow_dtype) else values.astype("string")
    found = pc.match_substring_regex(pa.array(text.array), "[A-Za-z]").fill_null(True)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def looks_like_insz(values: pd.Series) -> pd.Series:
    """Vectorised: which values are valid INSZ/bis numbers.

    Parameters
    ----------
    values
        Strings (missing values allowed).

    Returns
    -------
    pd.Series
        Boolean, aligned to ``values``.
    """
    out = pd.Series(False, index=values.index)
    # a value with an ASCII letter is none (an INSZ is digits and separators): found in Arrow, so that only
    # the other values (no pseudonymous key, say) go through the separators and digits, one by one
    maybe = ~_has_ascii_letter(values)
    if not maybe.any():
        return out
    s = values[maybe].astype("string").str.replace(_SEPARATORS.pattern, "", regex=True)
    digits = s.str.fullmatch(r"\d{11}").fillna(False).astype(bool)
    if not digits.any():
        return out
    d = s[digits].astype(str)
    base = d.str[:9].astype(np.int64).to_numpy()
    check = d.str[9:].astype(np.int64).to_numpy()
    month = d.str[2:4].astype(np.int64).to_numpy()
    ok_before = (97 - base % 97) == check
    ok_after = (97 - (base + 2_000_000_000) % 97) == check
    m = month % 20
    ok_month = (month <= 52) & ((m >= 1) & (m <= 12) | (month == 0) | (month == 20) | (month == 40))
    out.loc[digits[digits].index] = (ok_before | ok_after) & ok_month
    return out


def synthetic_insz(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct synthetic but checksum-valid INSZ numbers (for tests of the refusal path).

    They are drawn from birth dates 1950-2004 and day counters 900-997, a range reserved here for
    synthetic data; they identify nobody.
    """
    out: set[str] = set()
    res: list[str] = []
    while len(res) < n:
        year = int(rng.integers(1950, 2005))
        month = int(rng.integers(1, 13))
        day = int(rng.integers(1, 29))
        serial = int(rng.integers(900, 998))
        base = int(f"{year % 100:02d}{month:02d}{day:02d}{serial:03d}")
        check = 97 - ((base + (2_000_000_000 if year >= 2000 else 0)) % 97)
        value = f"{base:09d}{check:02d}"
        if value not in out:
            out.add(value)
            res.append(value)
    return res


def pseudo_key_from_env(env: str = PSEUDO_KEY_ENV) -> bytes:
    """The pseudonymisation secret from the environment; a clear error when it is absent or weak."""
    secret = os.environ.get(env)
    if not secret:
        raise ConfigError(
            "No pseudonymisation key in the environment",
            param=env,
            expected="a secret of at least 16 characters in the environment variable",
            found="nothing",
            hint=f"export {env}=... (keep it outside the repository and the data folders)",
        )
    if len(secret) < 16:
        raise ConfigError(
            "The pseudonymisation key is too short",
            param=env,
            expected="at least 16 characters",
            found=f"{len(secret)} characters",
            hint="use a long random secret, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`",
        )
    return secret.encode("utf-8")


def pseudonymise(values: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 of each normalised INSZ under ``key``, truncated to 32 hex digits.

    A plain hash of an INSZ can be reversed by enumerating the ~4e7 valid numbers; a keyed hash
    cannot without the key.
    """
    norm = values.astype(str).map(normalise_insz)
    cache: dict[str, str] = {}

    def one(v: str) -> str:
        h = cache.get(v)
        if h is None:
            h = hmac.new(key, v.encode("ascii"), hashlib.sha256).hexdigest()[:32]
            cache[v] = h
        return h

    return norm.map(one)


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The inner and outer HMAC-SHA256 pads of ``key`` (RFC 2104), for computing :func:`pseudonymise` in SQL.

    ``HMAC(K, m) = SHA256(opad || SHA256(ipad || m))``; DuckDB's ``sha256`` then gives the same keyed
    hashes as :func:`pseudonymise` without a Python loop over the values.
    """
    k = hashlib.sha256(key).digest() if len(key) > 64 else key
    k = k.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in k), bytes(b ^ 0x5C for b in k)


def pseudonymise_file(src: Path, dst: Path, *, column: str, key: bytes) -> dict[str, int]:
    """Pseudonymise the raw INSZ in ``column`` of the CSV ``src`` into ``dst`` (written atomically).

    Every other column is scanned too: an INSZ-like value there is an error naming the column (the
    value is never shown).  Returns the counts ``rows``, ``pseudonymised`` and ``kept``.
    """
    from survey.errors import DataValidationError

    if not src.is_file():
        raise DataValidationError("The list to pseudonymise does not exist", file=src, expected="a CSV file", found="no such file", hint="check the path")
    head = src.read_bytes()[:4096].decode("utf-8-sig", errors="replace").splitlines()
    sep = ";" if head and head[0].count(";") > head[0].count(",") else ","
    try:
        df = pd.read_csv(src, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(
            "The list could not be parsed", file=src, expected="a CSV file with a header row", found=type(exc).__name__,
            hint="save the list as UTF-8 CSV (the line itself is not shown)",
        ) from None
    if column not in df.columns:
        raise DataValidationError(
            "The key column is not in the list", file=src, row=0, column=column, expected=f"a column {column}",
            found="columns " + ", ".join(df.columns), hint="name the key column with --column",
        )
    for c in df.columns:
        if c == column:
            continue
        hit = looks_like_insz(df[c]).to_numpy()
        if hit.any():
            raise DataValidationError(
                "A column other than the key holds INSZ-like values", file=src, row=int(np.flatnonzero(hit)[0]) + 1, column=c,
                expected="INSZ only in the key column", found=f"{int(hit.sum())} value(s); not shown",
                hint="remove the column, or pseudonymise it at the source",
            )
    mask = looks_like_insz(df[column]).to_numpy()
    out = df.copy()
    if mask.any():
        out.loc[mask, column] = pseudonymise(df.loc[mask, column], key).to_numpy()
    tmp = dst.with_name(dst.name + ".tmp")
    out.to_csv(tmp, index=False, sep=sep, lineterminator="\n")
    tmp.replace(dst)
    return {"rows": len(df), "pseudonymised": int(mask.sum()), "kept": int((~mask).sum())}
