"""The matcher's connection to a node."""

from __future__ import annotations

from web3 import HTTPProvider, Web3

__all__ = ["connect", "fees"]


def connect(rpc_url: str) -> Web3:
    """A web3 client for `rpc_url` without web3's validation middleware, which asks the node for its chain id
    before every call and so doubles the round trips of intake's balance reads. The matcher checks the chain
    id once at start (`RootPoster.from_deployment`)."""
    web3 = Web3(HTTPProvider(rpc_url))
    web3.middleware_onion.remove("validation")
    return web3


def fees(web3: Web3) -> dict[str, int]:
    """Fee fields for a transaction now: EIP-1559 (twice the base fee plus the node's tip, so it survives
    a few fuller blocks) or, on a chain without it, the legacy gas price."""
    base_fee = web3.eth.get_block("latest").get("baseFeePerGas")
    if base_fee is None:
        return {"gasPrice": int(web3.eth.gas_price)}
    tip = int(web3.eth.max_priority_fee)
    return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip}
