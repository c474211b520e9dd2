"""Error types shared by every popeval component.

Every error that reaches a user names *where* (file, row, column or parameter), what was
*expected*, what was *found*, and a *hint* for fixing it.  :mod:`analysis` re-uses these.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "DataValidationError", "LimeSurveyFetchError", "PopevalError"]


class PopevalError(Exception):
    """Base class of popeval's errors, with structured fields.

    Parameters
    ----------
    title
        One line saying what went wrong.
    file, row, column, param
        Where it went wrong; ``row`` is the 1-based data row (the header is row 0).
    expected, found
        What was expected and what was found instead.
    hint
        How to fix it.
    detail
        Anything else worth saying.
    """

    def __init__(
        self,
        title: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
        param: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.title = title
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.param = param
        self.expected = expected
        self.found = found
        self.hint = hint
        self.detail = detail
        super().__init__(self._render())

    def with_hint(self, hint: str) -> PopevalError:
        """This error with another hint (message re-rendered); returns ``self``."""
        self.hint = hint
        self.args = (self._render(),)
        return self

    def _render(self) -> str:
        parts = [self.title]
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.param is not None:
            where.append(f"setting '{self.param}'")
        if where:
            parts.append("  where: " + ", ".join(where))
        if self.expected is not None:
            parts.append(f"  expected: {self.expected}")
        if self.found is not None:
            parts.append(f"  found: {self.found}")
        if self.detail is not None:
            parts.append(f"  detail: {self.detail}")
        if self.hint is not None:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)


class DataValidationError(PopevalError, ValueError):
    """An input file does not follow the study data model."""


class ConfigError(PopevalError, ValueError):
    """A configuration setting or argument is unknown or invalid."""


class LimeSurveyFetchError(PopevalError, RuntimeError):
    """Talking to LimeSurvey failed (credentials, network, server answer)."""
