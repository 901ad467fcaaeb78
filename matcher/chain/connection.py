"""The matcher's connection to a node."""

from __future__ import annotations

from web3 import HTTPProvider, Web3

__all__ = ["connect"]


def connect(rpc_url: str) -> Web3:
    """A web3 client for `rpc_url` without web3's validation middleware, which asks the node for its chain id
    before every call and so doubles the round trips of intake's balance reads. The matcher checks the chain
    id once at start (`RootPoster.from_deployment`)."""
    web3 = Web3(HTTPProvider(rpc_url))
    web3.middleware_onion.remove("validation")
    return web3


