"""The database connection: SQLite (one file, WAL, synchronous=FULL, foreign keys) or PostgreSQL (psycopg 3).

Every store method runs in one transaction from `reading` or `writing`. On SQLite a writing transaction starts
with `BEGIN IMMEDIATE`, taking the file's write lock before it reads anything: two writers then queue on the
busy timeout instead of one failing with "database is locked" when it upgrades a read lock. On PostgreSQL
writers rely on constraints and conditional updates (`INSERT ... ON CONFLICT DO NOTHING`,
`UPDATE ... WHERE status = 'open'`), which are correct under READ COMMITTED.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from sqlalchemy import Table, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError

from matcher.store.errors import InvalidStoreUrlError

__all__ = ["CHUNK", "SQLITE_BUSY_TIMEOUT_MS", "chunks", "connect", "insert_or_ignore", "reading", "writing"]

SQLITE_BUSY_TIMEOUT_MS = 30_000
CHUNK = 400
"""Keys per `IN (...)` list: well within every backend's limit on bound parameters."""
_T = TypeVar("_T")
_WRITE = "gpuspot_write"


def connect(url: str) -> Engine:
    """An engine for `sqlite:///path/to/matcher.db` (parent directories are created) or
    `postgresql://user:password@host/db` (driven by psycopg 3)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidStoreUrlError(
            f"store URL {url!r} is not a database URL ({exc}): use sqlite:///path/to/matcher.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise InvalidStoreUrlError(
                f"store URL {url!r} names no file: the store must survive a restart, so give a path, e.g. "
                "sqlite:///var/lib/gpuspot/matcher.db (three slashes, then a relative path; four for "
                "an absolute one)"
            )
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed.set(drivername="sqlite+pysqlite"))
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        return create_engine(parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True)
    raise InvalidStoreUrlError(
        f"store URL {url!r} uses {backend!r}: the store supports sqlite:///<path> and postgresql://..."
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN, instead of pysqlite's implicit deferred one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit returns only after the WAL is fsynced, so an acknowledged write survives a
            # power cut, not just a killed process (NORMAL in WAL mode can lose the last commits).
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One read-write transaction: committed when the block ends, rolled back if it raises."""
    with engine.connect().execution_options(**{_WRITE: True}) as connection, connection.begin():
        yield connection


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction, a consistent snapshot on both backends (SQLite's WAL readers see one
    snapshot per transaction; PostgreSQL needs REPEATABLE READ for that)."""
    options: dict[str, Any] = {}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as connection, connection.begin():
        yield connection


@overload
def insert_or_ignore(
    connection: Connection,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    key: list[str],
    returning: Literal[False] = False,
) -> int: ...


@overload
def insert_or_ignore(
    connection: Connection,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    key: list[str],
    returning: Literal[True],
) -> list[Any]: ...


def insert_or_ignore(
    connection: Connection,
    table: Table,
    values: dict[str, Any] | list[dict[str, Any]],
    key: list[str],
    returning: bool = False,
) -> int | list[Any]:
    """`INSERT ... ON CONFLICT (key) DO NOTHING`; the number of rows inserted, or with `returning` the
    inserted rows' keys (the first key column's values). Only a conflict on `key` is ignored: any other
    constraint still raises."""
    if isinstance(values, list) and not values:
        return [] if returning else 0
    dialect = connection.dialect.name
    statement: Any
    if dialect == "sqlite":
        statement = sqlite_insert(table).on_conflict_do_nothing(index_elements=key)
    elif dialect == "postgresql":
        statement = postgresql_insert(table).on_conflict_do_nothing(index_elements=key)
    else:  # pragma: no cover - connect() only builds these two
        raise InvalidStoreUrlError(f"unsupported database dialect {dialect!r}")
    # Counted through RETURNING: drivers disagree on rowcount for this statement (psycopg reports -1).
    inserted = connection.execute(statement.returning(*(table.c[name] for name in key)), values).all()
    return [row[0] for row in inserted] if returning else len(inserted)


def chunks(items: Collection[_T], size: int = CHUNK) -> Iterator[list[_T]]:
    """`items` in lists of at most `size`, each to become one `IN (...)`."""
    listed = list(items)
    for start in range(0, len(listed), size):
        yield listed[start : start + size]
