"""Errors of `gpuspot.chain`: what the shared chain helpers raise before any service wraps them."""

from __future__ import annotations

__all__ = ["AbiNotFoundError"]


class AbiNotFoundError(Exception):
    """No compiled artifact holds the contract's ABI (the contracts were not compiled here): run
    `ape compile`."""
