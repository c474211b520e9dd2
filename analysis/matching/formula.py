"""Formula and data helpers shared by propensity scores, matching, balance and the effect estimators."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from survey.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "covariate_matrix",
    "design_matrix",
    "fast_design_matrix",
    "resolve_weights",
    "rhs_terms",
    "split_formula",
    "treatment_vector",
    "variables_of",
]


def split_formula(formula: str, *, param: str = "formula") -> tuple[str, str]:
    """Split ``"treat ~ x1 + x2"`` into its left- and right-hand sides."""
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise ConfigError(
            "A formula needs exactly one '~'",
            param=param,
            expected="a patsy-style formula such as 'treat ~ age + educ'",
            found=repr(formula),
        )
    lhs, rhs = (part.strip() for part in formula.split("~"))
    if not lhs or not rhs:
        raise ConfigError(
            "A formula needs a treatment on the left and covariates on the right",
            param=param,
            expected="'treat ~ x1 + x2'",
            found=repr(formula),
        )
    return lhs, rhs


def rhs_terms(rhs: str) -> list[str]:
    """The terms of a right-hand side, split on top-level ``+``."""
    terms: list[str] = []
    depth = 0
    current = ""
    for ch in rhs:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "+" and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += ch
    terms.append(current.strip())
    return [t for t in terms if t and t not in {"1", "0", "-1"}]


def treatment_vector(df: pd.DataFrame, column: str) -> np.ndarray:
    """The treatment column as a 0/1 integer array, checked."""
    if column not in df.columns:
        raise DataValidationError(
            "The treatment variable is not a column of the data",
            column=column,
            expected="a 0/1 column named on the left of the formula",
            found=f"columns {list(df.columns)[:10]}",
        )
    raw = df[column]
    if raw.isna().any():
        row = int(np.flatnonzero(raw.isna().to_numpy())[0]) + 1
        raise DataValidationError(
            "The treatment has missing values", column=column, row=row, expected="0 or 1",
            found="missing", hint="drop or impute rows with a missing treatment first",
        )
    values = raw.to_numpy()
    if values.dtype == bool:
        return values.astype(np.int64)
    uniq = set(np.unique(values).tolist())
    if not uniq <= {0, 1}:
        raise DataValidationError(
            "The treatment must be coded 0/1", column=column, expected="values in {0, 1}",
            found=f"values {sorted(uniq, key=str)[:5]}",
        )
    t = values.astype(np.int64)
    if t.sum() == 0 or t.sum() == t.size:
        raise DataValidationError(
            "The treatment must have treated and control units", column=column,
            expected="both 0 and 1", found=f"only {int(t[0])}",
        )
    return t


def resolve_weights(
    df: pd.DataFrame, weights: str | Sequence[float] | np.ndarray | pd.Series | None, *, param: str
) -> np.ndarray | None:
    """Survey (sampling) weights as a float array aligned with ``df``, or ``None``."""
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in df.columns:
            raise DataValidationError(
                "The weight column is not in the data", column=weights, param=param,
                expected="a column of positive weights", found=f"columns {list(df.columns)[:10]}",
            )
        w = df[weights].to_numpy(dtype=float)
    else:
        w = np.asarray(weights, dtype=float)
    if w.shape != (len(df),):
        raise DataValidationError(
            "Weights must have one value per row", param=param, expected=f"length {len(df)}",
            found=f"shape {w.shape}",
        )
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise DataValidationError(
            "Weights must be finite and non-negative", param=param,
            row=int(np.flatnonzero(bad)[0]) + 1, expected=">= 0", found=str(w[bad][0]),
        )
    return w


def _is_categorical(s: pd.Series) -> bool:
    import pandas as pd

    return bool(
        isinstance(s.dtype, pd.CategoricalDtype)
        or s.dtype == object
        or pd.api.types.is_string_dtype(s.dtype)
        or pd.api.types.is_bool_dtype(s.dtype)
    )


def covariate_matrix(df: pd.DataFrame, rhs: str, *, param: str = "formula") -> pd.DataFrame:
    """Covariates as MatchIt's ``get.covs.matrix``: one dummy per level of each factor.

    Plain column names are used as they are (numeric) or expanded to one 0/1 column per level,
    named ``<column><level>`` as R does.  Other terms (``I(age**2)``, interactions) are built by
    patsy.
    """
    import pandas as pd

    out: dict[str, np.ndarray] = {}
    for term in rhs_terms(rhs):
        if term in df.columns:
            s = df[term]
            if s.isna().any():
                raise DataValidationError(
                    "Missing values are not allowed in the covariates", column=term, param=param,
                    row=int(np.flatnonzero(s.isna().to_numpy())[0]) + 1,
                    hint="impute or drop rows with missing covariates before matching",
                )
            if _is_categorical(s):
                levels = (
                    list(s.cat.categories)
                    if isinstance(s.dtype, pd.CategoricalDtype)
                    else sorted(s.unique().tolist(), key=str)
                )
                for level in levels:
                    out[f"{term}{level}"] = (s.to_numpy() == level).astype(float)
            else:
                out[term] = s.to_numpy(dtype=float)
        else:
            import patsy

            try:
                mat = patsy.dmatrix(f"0 + {term}", df, return_type="dataframe")
            except Exception as exc:
                raise ConfigError(
                    "A formula term could not be evaluated", param=param, found=repr(term),
                    hint="use column names, or patsy terms such as I(age**2) or a:b",
                ) from exc
            for col in mat.columns:
                out[str(col)] = mat[col].to_numpy(dtype=float)
    frame = pd.DataFrame(out, index=df.index)
    if not np.isfinite(frame.to_numpy()).all():
        raise DataValidationError(
            "Non-finite values in the covariates", param=param, hint="drop or impute them",
        )
    return frame


def variables_of(spec: str | Sequence[str] | None, *, param: str) -> list[str]:
    """Column names from ``"~ a + b"``, ``"a + b"``, ``"a"`` or a list of names."""
    if spec is None:
        return []
    if isinstance(spec, str):
        text = spec.split("~")[-1]
        return rhs_terms(text)
    names = list(spec)
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(
            "Variables must be given by name", param=param, expected="str or list of str",
            found=repr(spec),
        )
    return names


_C_TERM = re.compile(r"^C\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$")


def _factor_codes(s: pd.Series) -> tuple[np.ndarray, list[Any]] | None:
    """Integer codes and levels of a factor, in patsy's level order, or None if unsupported.

    Pandas categoricals keep their category order (unused categories included, as patsy does),
    booleans have the levels ``[False, True]`` and string columns their sorted distinct values.
    Missing values, non-string categories (patsy names them by ``repr``), mixed-type object
    columns and other dtypes (numeric ``C(x)`` included) return None.
    """
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy()
        if (codes < 0).any() or not all(isinstance(c, str) for c in s.cat.categories):
            return None
        return codes.astype(np.int64), list(s.cat.categories)
    if s.dtype == bool:
        return s.to_numpy().astype(np.int64), [False, True]
    if s.dtype == object:
        if pd.api.types.infer_dtype(s, skipna=False) != "string":
            return None
        codes, uniques = pd.factorize(s, sort=True)
        return codes.astype(np.int64), list(uniques)
    return None


def fast_design_matrix(df: pd.DataFrame, rhs: str) -> tuple[np.ndarray, list[str]] | None:
    """Patsy's design matrix for simple right-hand sides, built with numpy, or None.

    Handles an intercept plus terms that are plain column names (numeric columns as they are;
    boolean, string and categorical columns as treatment-coded factors) and ``C(column)``.  The
    columns and their names are those ``patsy.dmatrix`` gives: the intercept, then the factor
    terms in formula order, then the numeric terms in formula order (patsy puts terms without a
    numeric factor first); a factor contributes ``name[T.level]`` for every level but the first.

    Parameters
    ----------
    df
        The data.
    rhs
        Right-hand side of the formula.

    Returns
    -------
    tuple of numpy.ndarray and list of str, or None
        The ``(n, p)`` float design matrix (Fortran order) and its column names; None when the formula
        has anything else (transformations, interactions, no intercept, missing values,
        unsupported dtypes), so that the caller can use patsy.
    """
    import keyword

    import pandas as pd

    terms: list[str] = []
    depth = 0
    current = ""
    for ch in rhs:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "+" and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += ch
    terms.append(current.strip())
    terms = [t for t in terms if t != "1"]
    if not terms or len(set(terms)) != len(terms):
        return None
    factors: list[tuple[str, np.ndarray, list[Any]]] = []
    numeric: list[tuple[str, np.ndarray]] = []
    seen: set[tuple[str, str]] = set()
    for term in terms:
        c_match = _C_TERM.match(term)
        if c_match is not None:
            column, as_factor = c_match.group(1), True
            name = f"C({column})"
        else:
            column, as_factor, name = term, False, term
        if not column.isidentifier() or keyword.iskeyword(column) or column not in df.columns:
            return None
        if df.columns.tolist().count(column) != 1:
            return None
        s = df[column]
        kind = "factor" if as_factor or _is_categorical(s) else "numeric"
        if (column, kind) in seen:
            return None
        seen.add((column, kind))
        if kind == "factor":
            coded = _factor_codes(s)
            if coded is None:
                return None
            factors.append((name, coded[0], coded[1]))
        else:
            if s.dtype.kind not in "iuf" or isinstance(s.dtype, pd.CategoricalDtype):
                return None
            values = s.to_numpy(dtype=float)
            if not np.isfinite(values).all():
                return None
            numeric.append((name, values))
    n = len(df)
    p = 1 + sum(len(levels) - 1 for _, _, levels in factors) + len(numeric)
    x = np.zeros((n, p), order="F")
    x[:, 0] = 1.0
    names = ["Intercept"]
    col = 1
    rows = np.arange(n)
    for name, codes, levels in factors:
        k = len(levels) - 1
        has = codes > 0
        x[rows[has], col + codes[has] - 1] = 1.0
        names.extend(f"{name}[T.{level}]" for level in levels[1:])
        col += k
    for name, values in numeric:
        x[:, col] = values
        names.append(name)
        col += 1
    return x, names


def design_matrix(df: pd.DataFrame, rhs: str) -> tuple[np.ndarray, list[str]]:
    """Patsy's design matrix of ``rhs`` on ``df`` (with its intercept) and its column names.

    Simple right-hand sides (column names and ``C(column)``) are built by
    :func:`fast_design_matrix`; anything else, and data it does not handle, by ``patsy.dmatrix``
    (missing values raise).  Both give the same matrix: patsy codes string columns value by value
    in Python, which made it the largest cost of a study's estimation.

    Raises
    ------
    patsy.PatsyError
        Where patsy cannot build the matrix (callers turn it into their own error).
    """
    fast = fast_design_matrix(df, rhs)
    if fast is not None:
        return fast
    import patsy

    mat = patsy.dmatrix(rhs, df, return_type="dataframe", NA_action="raise")
    return np.asarray(mat, dtype=float), [str(c) for c in mat.columns]
