"""What the agent asks per GPU-hour: a pluggable function of recent clearing prices and utilisation.

A policy is any callable `(PricingInputs) -> int` returning a price in token base units per GPU-hour; the
agent never asks below the configured floor whatever the policy says. Two ship:
- `fixed`: the floor. Under uniform pricing an ask at its true floor loses nothing (it earns the clearing
  price), which makes it the right default.
- `utilisation`: the floor, raised as the host fills up, and never below the recent clearing price times
  the utilisation (a busy host holds out for what the market has been paying).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["PricingInputs", "PricingPolicy", "fixed", "policy_named", "utilisation"]


@dataclass(frozen=True)
class PricingInputs:
    """`recent_prices`: the product's latest clearing prices (newest first, base units per GPU-hour);
    `leased` and `total`: GPUs of this host in leases and in all."""

    floor: int
    recent_prices: Sequence[int]
    leased: int
    total: int


PricingPolicy = Callable[[PricingInputs], int]


def fixed(inputs: PricingInputs) -> int:
    return inputs.floor


def utilisation(inputs: PricingInputs) -> int:
    """floor x (1 + utilisation), and at least the mean recent clearing price x utilisation; integers only."""
    if inputs.total <= 0:
        return inputs.floor
    raised = inputs.floor + inputs.floor * inputs.leased // inputs.total
    if inputs.recent_prices:
        mean = sum(inputs.recent_prices) // len(inputs.recent_prices)
        raised = max(raised, mean * inputs.leased // inputs.total)
    return raised


_POLICIES: dict[str, PricingPolicy] = {"fixed": fixed, "utilisation": utilisation}


def policy_named(name: str) -> PricingPolicy:
    try:
        return _POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown pricing policy {name!r}: choose one of {sorted(_POLICIES)}") from None
