"""Fee fields for a transaction, one rule for every participant that sends one: the matcher's root poster,
the provider agent and the buyer SDK."""

from __future__ import annotations

from web3 import Web3

__all__ = ["fees"]


def fees(web3: Web3) -> dict[str, int]:
    """Fee fields for a transaction now: EIP-1559 (twice the base fee plus the node's tip, so it survives
    a few fuller blocks) or, on a chain without it, the legacy gas price."""
    base_fee = web3.eth.get_block("latest").get("baseFeePerGas")
    if base_fee is None:
        return {"gasPrice": int(web3.eth.gas_price)}
    tip = int(web3.eth.max_priority_fee)
    return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip}
