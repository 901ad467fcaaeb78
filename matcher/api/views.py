"""Response bodies: storage records turned into JSON (hex for bytes, decimal strings for amounts that can
exceed 2^53), kept apart from the storage models."""

from __future__ import annotations

from typing import Any

from gpuspot.catalog import Catalog
from matcher.store import BatchRecord, LeaseRecord, OrderRecord


def hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else "0x" + bytes(value).hex()


def product_name(catalog: Catalog, product: bytes) -> str | None:
    found = catalog.get(product)
    return None if found is None else found.name


def order_view(record: OrderRecord, catalog: Catalog) -> dict[str, Any]:
    return {
        "hash": hex_or_none(record.order_hash),
        "type": record.kind,
        "signer": record.signer,
        "product": hex_or_none(record.product),
        "product_name": product_name(catalog, record.product),
        "nonce": str(record.nonce),
        "price_per_gpu_hour": str(record.price),
        "gpus": record.gpus,
        "duration": record.duration,
        "host_id": hex_or_none(record.host_id),
        "expiry": record.expiry,
        "max_cost": None if record.max_cost is None else str(record.max_cost),
        "status": record.status.value,
        "received_at": record.received_at,
        "status_at": record.status_at,
    }


def batch_view(batch: BatchRecord) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "status": batch.status.value,
        "seed": hex_or_none(batch.seed),
        "rule": batch.rule,
        "code_version": batch.code_version,
        "commitment": hex_or_none(batch.commitment),
        "root": hex_or_none(batch.root),
        "lease_count": batch.lease_count,
        "leaf_count": batch.leaf_count,
        "totals": {k: str(v) for k, v in batch.totals.items()},
        "recorded_at": batch.recorded_at,
        "root_tx_hash": hex_or_none(batch.root_tx_hash),
        "posted_tx_hash": hex_or_none(batch.posted_tx_hash),
        "posted_block": batch.posted_block,
        "posted_at": batch.posted_at,
    }


def lease_view(lease: LeaseRecord, catalog: Catalog) -> dict[str, Any]:
    chain = lease.chain
    return {
        "lease_id": lease.lease_id,
        "batch_id": lease.batch_id,
        "status": lease.status,
        "product": hex_or_none(lease.product),
        "product_name": product_name(catalog, lease.product),
        "bid_hash": hex_or_none(lease.bid_hash),
        "ask_hash": hex_or_none(lease.ask_hash),
        "buyer": lease.buyer,
        "provider": lease.provider,
        "host_id": hex_or_none(lease.host_id),
        "gpus": lease.gpus,
        "duration": lease.duration,
        "price_per_gpu_hour": str(lease.price_per_gpu_hour),
        "chain": {
            "locked": chain.locked,
            "reserved": None if chain.reserved is None else str(chain.reserved),
            "used_gpu_seconds": chain.used_gpu_seconds,
            "paid": str(chain.paid),
            "refunded": str(chain.refunded),
            "closed": chain.closed,
            "reclaimed": chain.reclaimed,
        },
    }
