"""Crash safety and opening: a writer killed with SIGKILL loses nothing it acknowledged; schema versions and
URLs are checked when a store opens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import update

from matcher.store import SCHEMA_VERSION, InvalidStoreUrlError, OrderStatus, SchemaVersionError, Store
from matcher.store.schema import schema_version

REPO = Path(__file__).resolve().parents[4]
WRITER = textwrap.dedent(
    """
    import sys
    from matcher.store import Store
    from store_market import NOW, accepted, bid

    store = Store.open(sys.argv[1])
    print("ready", flush=True)
    for nonce in range(100_000):
        order = accepted(bid(nonce=nonce, gpus=1))
        store.add_order(order, NOW)
        print(bytes(order.order_hash).hex(), flush=True)  # acknowledged: the call returned
    """
)


def test_every_acknowledged_order_survives_kill_9(store_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert writer.stdout is not None
    acknowledged: list[str] = []
    try:
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()  # type: ignore[union-attr]
        while len(acknowledged) < 40:
            line = writer.stdout.readline()
            assert line, f"the writer stopped early: {writer.stderr.read()}"  # type: ignore[union-attr]
            acknowledged.append(line.strip())
        writer.send_signal(signal.SIGKILL)  # mid-stream: it is adding the next orders right now
    finally:
        writer.kill()
        writer.wait(timeout=30)
    acknowledged += [line.strip() for line in writer.stdout.read().splitlines()]  # printed before the kill
    assert writer.returncode == -signal.SIGKILL

    with Store.open(store_url) as reopened:
        stored = {bytes(record.order_hash).hex() for record in reopened.open_orders()}
        assert set(acknowledged) <= stored
        assert len(stored) - len(acknowledged) <= 1  # at most the one committed but not yet printed
        for order_hash in acknowledged:
            record = reopened.get_order(bytes.fromhex(order_hash))
            assert record is not None and record.status is OrderStatus.OPEN


def test_sqlite_runs_in_wal_mode_with_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path}/a/b/matcher.db") as store, store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert (tmp_path / "a" / "b" / "matcher.db").exists()


def test_a_store_written_by_a_newer_schema_is_refused(store_url: str) -> None:
    with Store.open(store_url) as store, store.engine.begin() as connection:
        connection.execute(update(schema_version).values(version=SCHEMA_VERSION + 1))
    with pytest.raises(SchemaVersionError, match="newer than this matcher's"):
        Store.open(store_url)


def test_reopening_checks_and_keeps_the_schema(store_url: str) -> None:
    Store.open(store_url).close()
    with Store.open(store_url) as store, store.engine.connect() as connection:
        assert connection.execute(schema_version.select()).scalars().all() == [SCHEMA_VERSION]


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql://x@y/z", "not a url", "sqlite:///file:x?mode=memory"]
)
def test_urls_the_store_cannot_use_are_refused(url: str) -> None:
    with pytest.raises(InvalidStoreUrlError):
        Store.open(url)
