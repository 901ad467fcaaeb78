"""The `store` fixture: a fresh store on SQLite (a file under tmp_path) and, when GPUSPOT_TEST_POSTGRES_URL is
set, on that PostgreSQL database (its tables are dropped first: point it at a scratch database)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from matcher.store import Store

POSTGRES_ENV = "GPUSPOT_TEST_POSTGRES_URL"
_SKIP_POSTGRES = (
    f"PostgreSQL not configured: set {POSTGRES_ENV}=postgresql://user:password@host:5432/scratch_db to run "
    "the store tests against it too (the database's public schema is wiped)"
)


def _wipe_postgres(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=_SKIP_POSTGRES),
        ),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/matcher.db"
    url = os.environ[POSTGRES_ENV]
    _wipe_postgres(url)
    return url


@pytest.fixture
def open_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens (and, at the end, closes) stores on the test's database: call it again to simulate a restart."""
    opened: list[Store] = []

    def _open() -> Store:
        opened.append(Store.open(store_url))
        return opened[-1]

    yield _open
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()
