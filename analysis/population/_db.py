"""Small helpers shared by the population modules: DuckDB connections and file hashes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

__all__ = ["DEFAULT_DB", "connect", "has_table", "require_table"]

#: The default location of the study database (inside the git-ignored derived folder).
DEFAULT_DB = Path("data_derived") / "popeval.duckdb"

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
    con = duckdb.connect(str(path), read_only=read_only)
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


