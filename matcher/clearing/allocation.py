"""Allocation at a given price: all-or-none bids packed best-fit into divisible asks.

Bids with `max_price >= price` are placed one at a time in priority order: cap descending, ties by
`keccak256(seed || order_hash)` ascending (never by arrival or list position). Each goes to the eligible ask
(`min_price <= price`) with enough free GPUs and `max_duration >= duration` that leaves the fewest GPUs free
after placing it, then has the lowest floor, then the lowest `keccak256(seed || order_hash)`. Each GPU of an
ask hosts at most one lease per batch (every lease starts when the batch's root is posted), so an ask's free
count only falls. A bid that fits nowhere stays unplaced.

Once eligible asks are ranked by (floor, seeded hash), best fit is the lexicographically smallest
(free GPUs, rank) among asks with free >= gpus and max_duration >= duration. Two indexes answer that:

- `_SlotTree` (the usual one): a max-segment-tree over slots `(free - 1) * n + rank` holding each ask's
  max_duration in the slot of its current free count. The answer is the leftmost slot at or after
  `(gpus - 1) * n` holding at least `duration`: O(log(F * n)) per bid whatever the book, so a flood of
  cheap short asks cannot make long bids scan them. It has F * n slots (F the largest ask), so it is used
  while that stays under `TREE_SLOTS_MAX`.
- `_SlotBuckets` (hosts of implausibly many GPUs): asks in buckets by free count, each in rank order with its
  durations also kept sorted, so a bucket with no ask long enough is skipped at once; otherwise the bucket is
  scanned in rank order up to the first ask long enough.

Both give the same allocation (a property test checks them against each other and a brute-force oracle).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from gpuspot.protocol.hashing import keccak256
from matcher.clearing.book import BookAsk, BookBid, PricePerGpuHour

__all__ = ["TREE_SLOTS_MAX", "Allocation", "allocate", "priority_order", "tie_key"]

TREE_SLOTS_MAX = 1 << 21
"""Largest segment tree built (slots = largest ask's GPUs x eligible asks): about 50 MB of Python ints."""


def tie_key(seed: bytes, order_hash: bytes) -> bytes:
    """`keccak256(seed || order_hash)`: the seeded rank that breaks every tie between equal orders."""
    return keccak256(seed + order_hash)


@dataclass(frozen=True, slots=True)
class Allocation:
    """Indices into the bids and asks handed to `allocate`."""

    eligible_bids: tuple[int, ...]
    """Bids at or above the price, in priority order."""
    placements: tuple[tuple[int, int], ...]
    """(bid, ask) per placed bid, in the bids' priority order."""
    unplaced: tuple[int, ...]
    """Eligible bids that fit no eligible ask, in priority order."""
    used_gpus: tuple[int, ...]
    """GPUs allocated per ask, for every ask handed in (eligible or not)."""


def priority_order(bids: Sequence[BookBid], indices: Sequence[int], seed: bytes) -> list[int]:
    """`indices` of `bids` in priority order: cap descending, then seeded hash ascending."""
    return sorted(indices, key=lambda i: (-bids[i].max_price, keccak256(seed + bids[i].order_hash)))


class _SlotTree:
    """Free GPUs of ranked asks as a max-segment-tree over (free count, rank) slots (see module docstring)."""

    __slots__ = ("asks", "size", "top", "tree", "durations")

    def __init__(self, gpus: Sequence[int], durations: Sequence[int]) -> None:
        self.asks = n = len(gpus)
        self.top = max(gpus)
        self.durations = durations
        size = 1
        while size < self.top * n:
            size <<= 1
        self.size = size
        # Built level by level with numpy, then walked as a list: list indexing is what the hot loop does.
        nodes = np.zeros(2 * size, dtype=np.int64)
        nodes[size + (np.asarray(gpus, dtype=np.int64) - 1) * n + np.arange(n)] = durations
        low = size
        while low > 1:
            nodes[low // 2 : low] = np.maximum(nodes[low : 2 * low : 2], nodes[low + 1 : 2 * low : 2])
            low //= 2
        self.tree: list[int] = nodes.tolist()

    def take(self, gpus: int, duration: int) -> int:
        """The rank of the best-fit ask for `gpus` x `duration`, whose free count drops by `gpus`; or -1."""
        if gpus > self.top:
            return -1
        tree, size, n = self.tree, self.size, self.asks
        node = (gpus - 1) * n + size
        if tree[node] < duration:
            # Climb to the next subtree to the right until one holds a long enough ask.
            while True:
                while node & 1:
                    node >>= 1
                if not node:
                    return -1
                node += 1
                if tree[node] >= duration:
                    break
        while node < size:
            node <<= 1
            if tree[node] < duration:
                node += 1
        free, rank = divmod(node - size, n)
        free += 1
        tree[node] = 0
        node >>= 1
        while node:
            left, right = tree[2 * node], tree[2 * node + 1]
            best = left if left > right else right
            if tree[node] == best:
                break
            tree[node] = best
            node >>= 1
        if free > gpus:
            length = self.durations[rank]
            node = (free - gpus - 1) * n + rank + size
            tree[node] = length
            node >>= 1
            while node and tree[node] < length:
                tree[node] = length
                node >>= 1
        return rank


class _SlotBuckets:
    """Free GPUs of ranked asks as buckets by free count (see module docstring)."""

    __slots__ = ("buckets", "lengths", "free_counts", "durations")

    def __init__(self, gpus: Sequence[int], durations: Sequence[int]) -> None:
        self.durations = durations
        self.buckets: dict[int, list[int]] = {}
        self.lengths: dict[int, list[int]] = {}
        for rank, free in enumerate(gpus):
            self.buckets.setdefault(free, []).append(rank)  # ranks arrive ascending: buckets stay sorted
            self.lengths.setdefault(free, []).append(durations[rank])
        for lengths in self.lengths.values():
            lengths.sort()
        self.free_counts = sorted(self.buckets)

    def take(self, gpus: int, duration: int) -> int:
        """The rank of the best-fit ask for `gpus` x `duration`, whose free count drops by `gpus`; or -1."""
        durations, buckets, lengths = self.durations, self.buckets, self.lengths
        for free in self.free_counts[bisect_left(self.free_counts, gpus) :]:
            if lengths[free][-1] < duration:
                continue
            bucket = buckets[free]
            for slot, rank in enumerate(bucket):
                if durations[rank] >= duration:
                    self._move(rank, slot, free, free - gpus)
                    return rank
        return -1

    def _move(self, rank: int, slot: int, free: int, left: int) -> None:
        length = self.durations[rank]
        bucket, lengths = self.buckets[free], self.lengths[free]
        del bucket[slot]
        del lengths[bisect_left(lengths, length)]
        if not bucket:
            del self.buckets[free], self.lengths[free]
            self.free_counts.remove(free)
        if left:
            if left not in self.buckets:
                self.buckets[left], self.lengths[left] = [], []
                insort(self.free_counts, left)
            insort(self.buckets[left], rank)
            insort(self.lengths[left], length)


def allocate(
    bids: Sequence[BookBid],
    asks: Sequence[BookAsk],
    price: PricePerGpuHour,
    seed: bytes,
    *,
    index: Literal["auto", "tree", "buckets"] = "auto",
) -> Allocation:
    """Places the bids eligible at `price` into the asks eligible at `price` (see the module's docstring).

    `index` picks the free-GPU index; tests and benchmarks force one, the result is the same.
    """
    eligible = priority_order(bids, [i for i, bid in enumerate(bids) if bid.max_price >= price], seed)
    ranked = sorted(
        (i for i, ask in enumerate(asks) if ask.min_price <= price),
        key=lambda i: (asks[i].min_price, keccak256(seed + asks[i].order_hash)),
    )
    used = [0] * len(asks)
    placements: list[tuple[int, int]] = []
    unplaced: list[int] = []
    if not ranked:
        return Allocation(tuple(eligible), (), tuple(eligible), tuple(used))
    gpus = [asks[i].gpus for i in ranked]
    durations = [asks[i].max_duration for i in ranked]
    if index == "auto":
        index = "tree" if max(gpus) * len(ranked) <= TREE_SLOTS_MAX else "buckets"
    slots = _SlotTree(gpus, durations) if index == "tree" else _SlotBuckets(gpus, durations)
    take = slots.take
    for b in eligible:
        bid = bids[b]
        rank = take(bid.gpus, bid.duration)
        if rank < 0:
            unplaced.append(b)
            continue
        ask = ranked[rank]
        used[ask] += bid.gpus
        placements.append((b, ask))
    return Allocation(
        eligible_bids=tuple(eligible),
        placements=tuple(placements),
        unplaced=tuple(unplaced),
        used_gpus=tuple(used),
    )
