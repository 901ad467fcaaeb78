"""gpuspot matcher: order intake, frequent batch auctions, settlement roots, chain watcher and API.

Built so far, each usable alone: `matcher.clearing` (the pure clearing core) and `matcher.intake` (pure order
validation with stable rejection codes). Root posting, the chain watcher, the store, the batch loop that ties
them together and the HTTP API are still to come (issue 3).
"""
