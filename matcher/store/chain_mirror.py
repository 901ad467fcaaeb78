"""The chain mirror: the watcher's decoded events, kept raw with their block numbers, and the views the
matcher needs, each a query over them. Nothing is derived and stored, so a reorg is one DELETE of the events
from blocks >= its first block, and the views are then exactly what the remaining events say.

Each event row also carries up to three lookup keys, filled by event type:

| event | account | subject | lease_id |
| --- | --- | --- | --- |
| Deposited, WithdrawalRequested, WithdrawalCancelled, Withdrawn | account | | |
| NoncesInvalidated | account | word_pos | |
| RootPosted | | batch_id | |
| LeaseLocked | buyer | nonce | lease_id |
| LeaseSettled, LeaseReclaimed | | | lease_id |
| ProviderRegistered, StakeAdded, MetadataUpdated, ExitRequested, ProviderExited, | provider | | |
| ProviderSlashed | provider | | |
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.engine import Connection

from matcher.chain.events import (
    ChainEvent,
    ExitRequested,
    LeaseLocked,
    LeaseReclaimed,
    LeaseSettled,
    NoncesInvalidated,
    ProviderExited,
    ProviderSlashed,
    RootPosted,
    WithdrawalRequested,
)
from matcher.chain.watcher import ChainCursor, Reorg, WatcherItem
from matcher.store.columns import uint_text
from matcher.store.engine import chunks, insert_or_ignore
from matcher.store.orders import account, close_orders, open_nonces_of
from matcher.store.records import ChainLeaseState, OrderStatus
from matcher.store.schema import chain_cursor, chain_events

__all__ = [
    "active_providers",
    "apply_chain",
    "chain_cursor_of",
    "close_orders_for",
    "closed_nonces",
    "is_nonce_closed",
    "locked_lease_ids",
    "lease_state",
    "posted_root",
    "pending_withdrawals",
    "provider_active",
    "rewind_chain",
    "withdrawal_pending",
]

_POSITION = frozenset(f.name for f in fields(ChainEvent))
_ACCOUNT_FIELDS = ("account", "buyer", "provider")
_SUBJECT = {NoncesInvalidated: "word_pos", RootPosted: "batch_id", LeaseLocked: "nonce"}


def _json_value(value: object) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return uint_text(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value


def _event_row(event: ChainEvent) -> dict[str, Any]:
    args = {f.name: getattr(event, f.name) for f in fields(event) if f.name not in _POSITION}
    who = next((args[name] for name in _ACCOUNT_FIELDS if name in args), None)
    subject = _SUBJECT.get(type(event))
    return {
        "block_number": event.block_number,
        "log_index": event.log_index,
        "block_hash": event.block_hash,
        "tx_hash": event.tx_hash,
        "name": type(event).__name__,
        "account": who,
        "subject": None if subject is None else args[subject],
        "lease_id": args.get("lease_id"),
        "args_json": json.dumps({k: _json_value(v) for k, v in args.items()}, separators=(",", ":")),
    }


def _save_cursor(connection: Connection, cursor: ChainCursor) -> None:
    text = cursor.to_json()
    if connection.execute(update(chain_cursor).values(cursor_json=text)).rowcount == 0:
        connection.execute(chain_cursor.insert(), {"singleton": 1, "cursor_json": text})


def chain_cursor_of(connection: Connection) -> ChainCursor | None:
    text = connection.execute(select(chain_cursor.c.cursor_json)).scalar_one_or_none()
    return None if text is None else ChainCursor.from_json(text)


def rewind_chain(connection: Connection, from_block: int) -> int:
    """Forgets every event from blocks >= `from_block` and moves the saved cursor back to that block (keeping
    the hashes of the blocks before it); the number of events forgotten."""
    uint_text(from_block, "from_block")
    removed = connection.execute(
        delete(chain_events).where(chain_events.c.block_number >= from_block)
    ).rowcount
    cursor = chain_cursor_of(connection)
    if cursor is not None and cursor.next_block > from_block:
        kept = tuple(ref for ref in cursor.recent_blocks if ref.number < from_block)
        _save_cursor(connection, ChainCursor(next_block=from_block, recent_blocks=kept))
    return int(removed)


def apply_chain(
    connection: Connection, items: Iterable[WatcherItem], cursor: ChainCursor, at: int, min_stake: int = 0
) -> int:
    """Applies one poll's items in order (a `Reorg` marker rewinds first) and saves `cursor`; the number of
    events stored. An event already stored at its (block, log index) is not stored twice. Open orders that
    the new events make unfillable are cancelled at `at` (see `close_orders_for`)."""
    stored = 0
    batch: list[dict[str, Any]] = []
    events: list[ChainEvent] = []
    for item in items:
        if isinstance(item, Reorg):
            if batch:
                stored += insert_or_ignore(connection, chain_events, batch, ["block_number", "log_index"])
                batch = []
            rewind_chain(connection, item.from_block)
        else:
            batch.append(_event_row(item))
            events.append(item)
    if batch:
        stored += insert_or_ignore(connection, chain_events, batch, ["block_number", "log_index"])
    close_orders_for(connection, events, at, min_stake)
    _save_cursor(connection, cursor)
    return stored


def close_orders_for(
    connection: Connection, events: Sequence[ChainEvent], at: int, min_stake: int
) -> dict[bytes, str]:
    """Cancels the open orders these events make unfillable, so that no batch matches them and no
    reservation holds for them: orders whose nonce was invalidated (or consumed by a lock), bids of a buyer
    who requested a withdrawal, asks of a provider who requested its exit, exited, or was slashed below
    `min_stake`. Returns the cancelled hashes with their reasons. A reorg that later removes the event does
    not reopen them: their signers sign again."""
    reasons: dict[bytes, str] = {}
    for event in events:
        where = f"(block {event.block_number}, tx 0x{bytes(event.tx_hash).hex()})"
        if isinstance(event, NoncesInvalidated):
            for order_hash, nonce in open_nonces_of(connection, event.account).items():
                if nonce >> 7 == event.word_pos and _lane_closed(event.closed_lanes, nonce):
                    reasons[order_hash] = f"nonce {nonce} invalidated on-chain {where}"
        elif isinstance(event, LeaseLocked):
            for order_hash, nonce in open_nonces_of(connection, event.buyer).items():
                if nonce == event.nonce:
                    reasons[order_hash] = f"nonce {nonce} consumed on-chain by lease {event.lease_id} {where}"
        elif isinstance(event, WithdrawalRequested):
            for order_hash in open_nonces_of(connection, event.account, "bid"):
                reasons[order_hash] = f"the buyer requested a withdrawal on-chain {where}"
        elif isinstance(event, ExitRequested | ProviderExited) or (
            isinstance(event, ProviderSlashed) and event.stake_left < min_stake
        ):
            what = {
                ExitRequested: "requested its exit",
                ProviderExited: "exited",
                ProviderSlashed: "was slashed below the minimum stake",
            }[type(event)]
            for order_hash in open_nonces_of(connection, event.provider, "ask"):
                reasons[order_hash] = f"the provider {what} on-chain {where}"
    by_reason: dict[str, list[bytes]] = {}
    for order_hash, reason in reasons.items():
        by_reason.setdefault(reason, []).append(order_hash)
    for reason, hashes in by_reason.items():
        close_orders(connection, hashes, OrderStatus.CANCELLED, at, None, reason)
    return reasons


def _lane_closed(closed_lanes: int, nonce: int) -> bool:
    """Whether a `NoncesInvalidated.closedLanes` word closes `nonce`: the escrow keeps two bits of state per
    nonce, so nonce `wordPos * 128 + i` is bit `2 * i` (IEscrow: "each set bit i of closedLanes's even
    bits")."""
    return bool(closed_lanes >> (2 * (nonce & 127)) & 1)


def _args(connection: Connection, *conditions: Any) -> list[tuple[str, dict[str, Any]]]:
    rows = connection.execute(
        select(chain_events.c.name, chain_events.c.args_json)
        .where(*conditions)
        .order_by(chain_events.c.block_number, chain_events.c.log_index)
    )
    return [(row.name, json.loads(row.args_json)) for row in rows]


def closed_nonces(connection: Connection, pairs: Collection[tuple[str, int]]) -> set[tuple[str, int]]:
    """The `(signer, nonce)` pairs among `pairs` that are no longer Open on-chain: consumed by a locked
    lease, or invalidated. Signers must be checksummed (as the store holds them)."""
    closed: set[tuple[str, int]] = set()
    for chunk in chunks(pairs):
        for who, nonce in connection.execute(
            select(chain_events.c.account, chain_events.c.subject).where(
                chain_events.c.name == LeaseLocked.__name__,
                tuple_(chain_events.c.account, chain_events.c.subject).in_(chunk),
            )
        ):
            closed.add((who, nonce))
        words = {(who, nonce >> 7) for who, nonce in chunk}
        lanes: dict[tuple[str, int], int] = {}
        for row in connection.execute(
            select(chain_events.c.account, chain_events.c.subject, chain_events.c.args_json).where(
                chain_events.c.name == NoncesInvalidated.__name__,
                tuple_(chain_events.c.account, chain_events.c.subject).in_(list(words)),
            )
        ):
            key = (row.account, row.subject)
            lanes[key] = lanes.get(key, 0) | int(json.loads(row.args_json)["closed_lanes"])
        closed.update(
            (who, nonce) for who, nonce in chunk if _lane_closed(lanes.get((who, nonce >> 7), 0), nonce)
        )
    return closed


def is_nonce_closed(connection: Connection, signer: str, nonce: int) -> bool:
    """Whether `(signer, nonce)` is no longer Open on-chain: invalidated, or consumed by a locked lease."""
    uint_text(nonce, "nonce")
    return bool(closed_nonces(connection, [(account(signer), nonce)]))


def _latest_of(
    connection: Connection, accounts: Collection[str], names: Sequence[str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each account's latest event among `names` (name and arguments), for the accounts that have one."""
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for chunk in chunks(accounts):
        rows = connection.execute(
            select(chain_events.c.account, chain_events.c.name, chain_events.c.args_json)
            .where(chain_events.c.name.in_(names), chain_events.c.account.in_(chunk))
            .order_by(chain_events.c.block_number, chain_events.c.log_index)
        )
        for row in rows:
            latest[row.account] = (row.name, json.loads(row.args_json))
    return latest


def pending_withdrawals(connection: Connection, accounts: Collection[str]) -> set[str]:
    """The accounts among `accounts` (checksummed) with a withdrawal requested and neither withdrawn nor
    cancelled since."""
    latest = _latest_of(connection, accounts, ("WithdrawalRequested", "WithdrawalCancelled", "Withdrawn"))
    return {who for who, (name, _) in latest.items() if name == "WithdrawalRequested"}


def withdrawal_pending(connection: Connection, signer: str) -> bool:
    """A withdrawal was requested and has been neither withdrawn nor cancelled since."""
    return bool(pending_withdrawals(connection, [account(signer)]))


def active_providers(connection: Connection, providers: Collection[str], min_stake: int = 0) -> set[str]:
    """The providers among `providers` (checksummed) that `ProviderRegistry.isActive` would call active:
    registered, no exit requested, and stake >= `min_stake` (the registry's `minStake`, which no event
    carries)."""
    status = _latest_of(connection, providers, ("ProviderRegistered", "ExitRequested", "ProviderExited"))
    registered = [who for who, (name, _) in status.items() if name == "ProviderRegistered"]
    stakes = _latest_of(connection, registered, ("ProviderRegistered", "StakeAdded", "ProviderSlashed"))
    return {
        who
        for who, (name, args) in stakes.items()
        if int(args["stake_left"] if name == "ProviderSlashed" else args["stake"]) >= min_stake
    }


def provider_active(connection: Connection, provider: str, min_stake: int = 0) -> bool:
    """`ProviderRegistry.isActive` for one provider; see `active_providers`."""
    return bool(active_providers(connection, [account(provider)], min_stake))


def locked_lease_ids(connection: Connection, lease_ids: Collection[int]) -> set[int]:
    """The lease ids among `lease_ids` that the chain has locked (any lock, settle or reclaim event: each
    implies the lock)."""
    found: set[int] = set()
    for chunk in chunks(lease_ids):
        found.update(
            connection.execute(
                select(chain_events.c.lease_id).where(chain_events.c.lease_id.in_(chunk)).distinct()
            ).scalars()
        )
    return found


def posted_root(connection: Connection, batch_id: int) -> tuple[bytes, int] | None:
    """(root, posted_at) of the batch's `RootPosted` event, if the chain has one."""
    events = _args(connection, chain_events.c.name == "RootPosted", chain_events.c.subject == batch_id)
    if not events:
        return None
    args = events[-1][1]
    return bytes.fromhex(args["root"][2:]), int(args["posted_at"])


def lease_state(connection: Connection, lease_id: int) -> ChainLeaseState:
    """What the lock, settle and reclaim events of the lease add up to."""
    locked = closed = reclaimed = False
    reserved: int | None = None
    used = paid = refunded = 0
    for name, args in _args(connection, chain_events.c.lease_id == lease_id):
        if name == LeaseLocked.__name__:
            locked, reserved = True, int(args["reserved"])
        elif name == LeaseSettled.__name__:
            locked = True  # a first settle locks in the same call
            used = int(args["used_gpu_seconds"])  # cumulative
            paid += int(args["paid"])
            refunded += int(args["refunded"])
            closed = closed or bool(args["closed"])
        elif name == LeaseReclaimed.__name__:
            refunded += int(args["refunded"])
            closed = reclaimed = True
    return ChainLeaseState(locked, reserved, used, paid, refunded, closed, reclaimed)
