"""The clearing price: where aggregate demand and supply, in GPU-seconds, trade the most.

D(p) sums `gpus * duration` over bids with `max_price >= p`; S(p) sums `gpus * max_duration` over asks with
`min_price <= p`. V(p) = min(D(p), S(p)) is the volume the curves say can trade at p. D falls and S rises, so
the candidate prices (every bid's cap and every ask's floor) that maximise V form one run [p_lo, p_hi]; the
clearing price is its integer midpoint, which splits the surplus between the sides. Between two candidates V
never exceeds its value at the lower one, so the maximum over candidates is the maximum over all prices, and
the midpoint attains it too.

Curves are built with numpy (one sort and one cumulative sum per side). Values that could overflow int64
(prices are uint128 in the protocol) switch the same code to Python integers in object arrays: slower, exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from matcher.clearing.book import GpuSeconds, PricePerGpuHour

__all__ = ["PriceInterval", "clearing_interval"]

_INT64_SAFE = 1 << 62


@dataclass(frozen=True, slots=True)
class PriceInterval:
    """The prices that maximise the curves' traded volume, and that volume."""

    low: PricePerGpuHour
    high: PricePerGpuHour
    volume: GpuSeconds

    @property
    def midpoint(self) -> PricePerGpuHour:
        """The clearing price: `(low + high) // 2`."""
        return PricePerGpuHour((self.low + self.high) // 2)


def _array(values: Sequence[int], safe: bool) -> npt.NDArray[np.int64] | npt.NDArray[np.object_]:
    if safe:
        return np.asarray(values, dtype=np.int64)
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def clearing_interval(
    bid_prices: Sequence[int],
    bid_volumes: Sequence[int],
    ask_prices: Sequence[int],
    ask_volumes: Sequence[int],
) -> PriceInterval | None:
    """The maximisers of V over candidate prices, or None when V is 0 everywhere (nothing can trade).

    Volumes are GPU-seconds per order (`gpus * duration` for bids, `gpus * max_duration` for asks), positive.
    """
    if not bid_prices or not ask_prices:
        return None
    top_price = max(max(bid_prices), max(ask_prices))
    top_volume = max(max(bid_volumes), max(ask_volumes)) * (len(bid_volumes) + len(ask_volumes))
    safe = top_price < _INT64_SAFE and top_volume < _INT64_SAFE
    bp, bv = _array(bid_prices, safe), _array(bid_volumes, safe)
    ap, av = _array(ask_prices, safe), _array(ask_volumes, safe)

    bid_order = np.argsort(bp, kind="stable")
    bp, bv = bp[bid_order], bv[bid_order]
    ask_order = np.argsort(ap, kind="stable")
    ap, av = ap[ask_order], av[ask_order]
    zero = np.zeros(1, dtype=bv.dtype)
    bid_below = np.concatenate((zero, np.cumsum(bv)))  # bid_below[k]: volume of the k cheapest bids
    ask_upto = np.concatenate((zero, np.cumsum(av)))

    candidates = np.unique(np.concatenate((bp, ap)))
    demand = bid_below[-1] - bid_below[np.searchsorted(bp, candidates, side="left")]
    supply = ask_upto[np.searchsorted(ap, candidates, side="right")]
    volume = np.minimum(demand, supply)
    best = volume.max()
    if best <= 0:
        return None
    at_best = np.flatnonzero(volume == best)
    return PriceInterval(
        low=PricePerGpuHour(int(candidates[at_best[0]])),
        high=PricePerGpuHour(int(candidates[at_best[-1]])),
        volume=GpuSeconds(int(best)),
    )
