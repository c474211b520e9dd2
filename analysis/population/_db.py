"""Small helpers shared by the population modules: DuckDB connections and file hashes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

__all__ = ["DEFAULT_DB", "MEMORY_LIMIT", "Progress", "connect", "has_table", "progress_printer", "progress_sink", "require_table"]

#: How a step reports its progress: a callable taking a line, True (standard error), False (quiet)
#: or None (standard error when it is a terminal, quiet otherwise: in tests, logs and pipes).
Progress = Callable[[str], None] | bool | None

#: The default location of the study database (inside the git-ignored derived folder).
DEFAULT_DB = Path("data_derived") / "popeval.duckdb"
#: DuckDB's memory limit on the connections popeval opens (DuckDB spills to ``<db>.tmp`` beyond it);
#: 5 million applications are ingested, linked and profiled within it (see bench/results/population.md).
MEMORY_LIMIT = "900MB"

@contextmanager
def connect(db: Any, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection for ``db`` (a path or an open connection; an open one is not closed)."""
    import duckdb

    if isinstance(db, duckdb.DuckDBPyConnection):
        yield db
        return
    if not isinstance(db, str | Path):
        raise ConfigError(
            "Not a database",
            param="db",
            expected="a path to a DuckDB file or an open duckdb connection",
            found=type(db).__name__,
        )
    path = Path(db)
    if read_only and not path.exists():
        raise ConfigError(
            "The study database does not exist",
            param="db",
            expected="a DuckDB file written by `popeval ingest`",
            found=f"no file {path.name}",
            hint="run `popeval ingest` first (or pass the database path you used)",
        )
    con = duckdb.connect(str(path), read_only=read_only, config={"memory_limit": MEMORY_LIMIT})
    try:
        yield con
    finally:
        con.close()


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the main schema holds a table called ``name``."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?", [name]
    ).fetchall()[0]
    return bool(row and row[0])


def require_table(con: duckdb.DuckDBPyConnection, name: str, hint: str) -> None:
    """Raise a clear error when the database lacks table ``name``."""
    if not has_table(con, name):
        raise ConfigError(
            f"The study database has no table '{name}'",
            param="db",
            expected=f"a database holding '{name}'",
            found=", ".join(r[0] for r in con.execute("SHOW TABLES").fetchall()) or "no tables",
            hint=hint,
        )


def progress_sink(progress: Progress) -> Callable[[str], None] | None:
    """Where progress lines go: ``progress`` itself (a callable), standard error, or nowhere (None).

    True means standard error, False quiet, None standard error only when it is a terminal (so
    tests, logs and pipes stay quiet).
    """
    if progress is None:
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)())
    if progress is False:
        return None
    if callable(progress):
        return progress
    return lambda m: print(m, file=sys.stderr, flush=True)


def progress_printer(progress: Progress, step: str) -> Callable[[str], None]:
    """A ``say(message)`` for ``step`` that emits ``  step: message (seconds since start)``.

    ``progress`` as for :func:`progress_sink`.
    """
    out = progress_sink(progress)
    if out is None:
        return lambda _msg: None
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        out(f"  {step}: {msg} ({time.perf_counter() - t0:.1f} s)")

    return say
