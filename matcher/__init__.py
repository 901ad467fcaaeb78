"""gpuspot matcher: order intake, frequent batch auctions, settlement roots, chain watcher and API.

Built so far: `matcher.clearing`, the pure clearing core (clearing price, all-or-none allocation, pricing
rules, explanations for unmatched orders, the commitment to a batch's inputs). Intake, the store, roots on-chain,
the chain watcher and the HTTP API are still to come (issue 3).
"""
