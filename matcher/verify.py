"""Recompute a recorded batch from its published inputs and compare: `python -m matcher verify-batch <id>`.

`verify_inputs(inputs)` is pure: given the body of `GET /v1/batches/{id}/inputs` it re-validates each
order's signature under the published EIP-712 domain, rebuilds the clearing books exactly as the service
does, re-runs `clear_batch` with the published seed and rule, re-assigns lease ids from the batch's first
lease id (`assign_lease_ids`), rebuilds the lease leaves, adds the published usage leaves (whose figures
come from the published evidence, not from the orders) and builds the settlement tree, and compares the
commitment, each order's outcome, the leases and the root with what was published. `chain_root` reads
`batchRoot(id)` from the escrow; `verify_batch` does all of it against an API and a node.

The result is a `Verification`: `ok`, or `mismatches`, each saying what differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from web3 import HTTPProvider, Web3

from gpuspot.protocol import (
    Ask,
    Bid,
    Eip712Domain,
    SettlementLeaf,
    Signature,
    from_json,
    order_hash,
    recover_signer,
    settlement_tree,
)
from matcher.clearing import (
    BookAsk,
    BookBid,
    HostId,
    OrderHash,
    PricePerGpuHour,
    PricingRule,
    Seconds,
    clear_batch,
)
from matcher.leases import considered_orders_hash, lease_leaves, product_books
from matcher.store import assign_lease_ids

__all__ = ["Verification", "chain_root", "fetch_inputs", "verify_batch", "verify_inputs"]

MATCHED = "matched"


@dataclass
class Verification:
    batch_id: int
    mismatches: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def report(self) -> str:
        if self.ok:
            return f"batch {self.batch_id}: match ({', '.join(self.checked)})"
        lines = [f"batch {self.batch_id}: MISMATCH ({len(self.mismatches)})"]
        lines += [f"  - {m}" for m in self.mismatches]
        return "\n".join(lines)


def _hex(value: bytes | None) -> str:
    return "none" if value is None else "0x" + bytes(value).hex()


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value.removeprefix("0x"))


def _book_order(order: Bid | Ask, digest_hash: bytes) -> BookBid | BookAsk:
    """The book entry the service builds from the stored order (matcher.service._books)."""
    if isinstance(order, Bid):
        return BookBid(
            OrderHash(digest_hash),
            order.buyer,
            order.gpus,
            Seconds(order.duration),
            PricePerGpuHour(order.max_price_per_gpu_hour),
        )
    return BookAsk(
        OrderHash(digest_hash),
        order.provider,
        HostId(order.host_id),
        order.gpus,
        Seconds(order.max_duration),
        PricePerGpuHour(order.min_price_per_gpu_hour),
    )


def _usage_leaf(values: Sequence[Any]) -> SettlementLeaf:
    """A published usage leaf from its values (integers as decimal text, bytes as 0x hex)."""
    kind, batch_id, lease_id, digest, buyer, provider, product, gpus, duration, price, used = values
    return SettlementLeaf(
        int(kind),
        int(batch_id),
        int(lease_id),
        _bytes(digest) or b"",
        buyer,
        provider,
        _bytes(product) or b"",
        int(gpus),
        int(duration),
        int(price),
        int(used),
    )


def verify_inputs(
    inputs: Mapping[str, Any], onchain_root: bytes | None = None, *, check_chain: bool = False
) -> Verification:
    """Recomputes the batch from `inputs`; with `check_chain`, also compares `onchain_root` (None: no root
    on-chain) with the recomputed root."""
    batch_id = int(inputs["batch_id"])
    result = Verification(batch_id)
    bad = result.mismatches.append
    domain_in = inputs["domain"]
    domain = Eip712Domain(
        chain_id=int(domain_in["chain_id"]), verifying_contract=domain_in["verifying_contract"]
    )

    # 1. the orders: parse, hash, signature
    entries: list[tuple[bytes, BookBid | BookAsk]] = []
    orders: dict[bytes, Bid | Ask] = {}
    outcomes: dict[bytes, str] = {}
    for item in inputs["orders"]:
        listed = _bytes(item["hash"])
        assert listed is not None
        try:
            order = from_json(item["order"])
            signature = Signature(_bytes(item["signature"]) or b"")
        except Exception as exc:
            bad(f"order {_hex(listed)}: cannot be parsed: {exc}")
            continue
        if item.get("type") != ("bid" if isinstance(order, Bid) else "ask"):
            bad(f"order {_hex(listed)}: type {item.get('type')!r} but the order is a {type(order).__name__}")
        computed = order_hash(order, domain)
        if computed != listed:
            bad(f"order {_hex(listed)}: its JSON hashes to {_hex(computed)} under the domain (order altered)")
        signer = order.buyer if isinstance(order, Bid) else order.provider
        try:
            recovered = recover_signer(order, domain, signature)
        except Exception as exc:
            recovered = f"nothing ({exc})"
        if recovered != signer:
            bad(f"order {_hex(listed)}: the signature recovers {recovered}, not its signer {signer}")
        if computed in orders:
            bad(f"order {_hex(computed)}: listed twice")
            continue
        orders[computed] = order
        outcomes[computed] = str(item.get("outcome"))
        entries.append((order.product, _book_order(order, computed)))
    considered = considered_orders_hash(orders)
    published_considered = _bytes(inputs.get("considered_orders_hash"))
    if published_considered is not None and published_considered != considered:
        bad(
            f"considered orders hash: published {_hex(published_considered)}, the listed orders give "
            f"{_hex(considered)}"
        )
    result.checked.append(f"{len(orders)} order signatures")

    # 2. the clearing
    books = product_books(entries)
    seed = _bytes(inputs["seed"])
    assert seed is not None
    try:
        clearing = clear_batch(books, seed, PricingRule.parse(inputs["rule"]))
    except Exception as exc:
        bad(f"clearing: cannot re-run clear_batch on the inputs: {exc}")
        return result
    published_commitment = _bytes(inputs["commitment"])
    if clearing.commitment != published_commitment:
        bad(
            f"commitment: published {_hex(published_commitment)}, recomputed {_hex(clearing.commitment)} "
            "(the orders, seed or rule differ from what was cleared)"
        )
    result.checked.append("commitment")
    recomputed_outcome: dict[bytes, str] = {}
    for match in clearing.matches:
        recomputed_outcome[bytes(match.bid_hash)] = MATCHED
        recomputed_outcome[bytes(match.ask_hash)] = MATCHED
    for product in clearing.products:
        for unmatched in product.unmatched:
            recomputed_outcome[bytes(unmatched.order_hash)] = unmatched.reason.value
    for h, published in outcomes.items():
        if recomputed_outcome.get(h) != published:
            bad(f"order {_hex(h)}: published outcome {published!r}, recomputed {recomputed_outcome.get(h)!r}")
    result.checked.append("outcomes")

    # 3. the leases: ids from the batch's first lease id, in clearing order
    published_leases: Sequence[Mapping[str, Any]] = inputs["leases"]
    first = min((int(lease["lease_id"]) for lease in published_leases), default=1)
    leases = assign_lease_ids(clearing, first)
    recomputed: list[dict[str, Any]] = [
        {
            "lease_id": lease.lease_id,
            "product": _hex(lease.product),
            "bid_hash": _hex(lease.match.bid_hash),
            "ask_hash": _hex(lease.match.ask_hash),
            "buyer": lease.match.buyer,
            "provider": lease.match.provider,
            "host_id": _hex(lease.match.host_id),
            "gpus": lease.match.gpus,
            "duration": int(lease.match.duration),
            "price_per_gpu_hour": str(lease.match.price_per_gpu_hour),
        }
        for lease in leases
    ]
    published_by_id = {int(lease["lease_id"]): dict(lease) for lease in published_leases}
    recomputed_by_id = {int(lease["lease_id"]): lease for lease in recomputed}
    for lease_id in sorted(set(published_by_id) | set(recomputed_by_id)):
        mine, theirs = recomputed_by_id.get(lease_id), published_by_id.get(lease_id)
        if mine is None:
            bad(f"lease {lease_id}: published, but the recomputed clearing has no such match")
        elif theirs is None:
            bad(
                f"lease {lease_id}: the recomputed clearing matches {mine['bid_hash']} with "
                f"{mine['ask_hash']}, which was not published"
            )
        else:
            diffs = [f"{k} {theirs.get(k)!r} != {v!r}" for k, v in mine.items() if theirs.get(k) != v]
            if diffs:
                bad(f"lease {lease_id}: published vs recomputed: {'; '.join(diffs)}")
    result.checked.append(f"{len(leases)} leases")

    # 4. the leaves and the root: the lease leaves recomputed, the published usage leaves as they are
    bids = {h: order for h, order in orders.items() if isinstance(order, Bid)}
    leaves = lease_leaves(leases, bids, domain, batch_id)
    for item in inputs.get("usage_leaves", ()):
        try:
            usage = _usage_leaf(item["values"])
        except Exception as exc:
            bad(f"usage leaf of lease {item.get('lease_id')}: cannot be parsed: {exc}")
            continue
        if not usage.is_usage or usage.batch_id >= batch_id:
            bad(
                f"usage leaf of lease {usage.lease_id}: kind {usage.kind}, lease batch {usage.batch_id}: "
                "not the usage of an earlier batch's lease"
            )
        leaves.append(usage)
    root = bytes(settlement_tree(leaves).root) if leaves else None
    published_root = _bytes(inputs.get("root"))
    if root != published_root:
        bad(f"root: published {_hex(published_root)}, recomputed {_hex(root)}")
    result.checked.append("root")
    if check_chain:
        if onchain_root != root:
            bad(f"on-chain root: batchRoot({batch_id}) is {_hex(onchain_root)}, recomputed {_hex(root)}")
        result.checked.append("on-chain root")
    return result


def fetch_inputs(api: str | httpx.Client, batch_id: int) -> dict[str, Any]:
    """`GET /v1/batches/{id}/inputs` from a base URL, or through a client (e.g. FastAPI's TestClient)."""
    path = f"/v1/batches/{batch_id}/inputs"
    if isinstance(api, httpx.Client):
        response = api.get(path)
    else:
        with httpx.Client(base_url=api, timeout=30.0) as client:
            response = client.get(path)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def chain_root(web3: Web3, escrow: str, batch_id: int) -> bytes | None:
    """`batchRoot(batch_id).root` on the escrow; None when no root is posted (zero)."""
    from matcher.chain import ESCROW, load_abi

    contract = web3.eth.contract(address=Web3.to_checksum_address(escrow), abi=list(load_abi(ESCROW)))
    posted = contract.functions.batchRoot(batch_id).call()
    root = bytes(posted[0])
    return None if root == b"\x00" * 32 else root


def verify_batch(api: str | httpx.Client, web3: Web3 | str, batch_id: int) -> Verification:
    """Fetches the inputs, recomputes the batch, and compares with the root on-chain (and the chain id)."""
    inputs = fetch_inputs(api, batch_id)
    if isinstance(web3, str):
        web3 = Web3(HTTPProvider(web3))
    domain = inputs["domain"]
    onchain = chain_root(web3, domain["verifying_contract"], batch_id)
    result = verify_inputs(inputs, onchain, check_chain=True)
    chain_id = int(web3.eth.chain_id)
    if chain_id != int(domain["chain_id"]):
        result.mismatches.append(
            f"chain id: the inputs' domain says {domain['chain_id']}, the node {chain_id}"
        )
    return result
