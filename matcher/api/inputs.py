"""A recorded batch's inputs, as `GET /v1/batches/{id}/inputs` serves them: everything anyone needs to
recompute the clearing, the lease ids, the leaves and the root (`matcher.verify`, `python -m matcher
verify-batch`).

The considered orders are read from the store's `batch_orders` (every order the clearing saw, with its
outcome) joined with `orders` (the canonical JSON and signature exactly as signed); the leases from `leases`.
The usage leaves (kinds 1 and 2) are listed with their values (`SettlementLeaf.values()`, integers as
decimal text, bytes as 0x hex), so the root can be rebuilt; their figures come from the published receipts
and challenges (`GET /v1/leases/{id}/receipts`, `.../challenges`). Read here, in one short read-only
transaction, rather than through `Store`, so that the store's API is
unchanged. Not paginated: a batch's orders are served in one body (fine at today's sizes; see
docs/matcher.md).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from matcher.api.views import batch_view, hex_or_none
from matcher.errors import NotFoundError
from matcher.leases import considered_orders_hash
from matcher.service import MatcherService
from matcher.store.schema import batch_orders, leases, leaves, orders

__all__ = ["batch_inputs"]


def batch_inputs(service: MatcherService, batch_id: int) -> dict[str, Any]:
    batch = service.store.get_batch(batch_id)
    if batch is None:
        raise NotFoundError(f"no batch has id {batch_id}")
    with service.store.engine.connect() as connection:
        order_rows = connection.execute(
            select(
                orders.c.order_hash,
                orders.c.kind,
                orders.c.order_json,
                orders.c.signature,
                batch_orders.c.outcome,
                batch_orders.c.gap,
            )
            .select_from(batch_orders.join(orders, orders.c.order_hash == batch_orders.c.order_hash))
            .where(batch_orders.c.batch_id == batch_id)
            .order_by(batch_orders.c.order_hash)
        ).all()
        lease_rows = connection.execute(
            select(leases).where(leases.c.batch_id == batch_id).order_by(leases.c.lease_id)
        ).all()
        usage_rows = connection.execute(
            select(leaves.c.lease_id, leaves.c.kind, leaves.c.values_json)
            .where(leaves.c.batch_id == batch_id, leaves.c.section == 1)
            .order_by(leaves.c.leaf_index)
        ).all()
    deployment = service.deployment
    return {
        "batch_id": batch.batch_id,
        "seed": hex_or_none(batch.seed),
        "rule": batch.rule,
        "code_version": batch.code_version,
        "commitment": hex_or_none(batch.commitment),
        "root": hex_or_none(batch.root),
        "domain": {"chain_id": deployment.chain_id, "verifying_contract": deployment.escrow},
        "considered_orders_hash": hex_or_none(considered_orders_hash([r.order_hash for r in order_rows])),
        "orders": [
            {
                "hash": hex_or_none(r.order_hash),
                "type": r.kind,
                "order": r.order_json,
                "signature": hex_or_none(bytes(r.signature)),
                "outcome": r.outcome,
                "gap": None if r.gap is None else str(r.gap),
            }
            for r in order_rows
        ],
        "leases": [
            {
                "lease_id": r.lease_id,
                "product": hex_or_none(r.product),
                "bid_hash": hex_or_none(r.bid_hash),
                "ask_hash": hex_or_none(r.ask_hash),
                "buyer": r.buyer,
                "provider": r.provider,
                "host_id": hex_or_none(r.host_id),
                "gpus": r.gpus,
                "duration": r.duration,
                "price_per_gpu_hour": str(r.price),
            }
            for r in lease_rows
        ],
        "usage_leaves": [
            {
                "lease_id": r.lease_id,
                "kind": r.kind,
                "used_gpu_seconds": int(json.loads(r.values_json)[-1]),
                "values": json.loads(r.values_json),
            }
            for r in usage_rows
        ],
        "batch": batch_view(batch),
    }
