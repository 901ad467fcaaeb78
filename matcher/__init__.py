"""gpuspot matcher: order intake, frequent batch auctions, settlement roots, chain watcher and API.

Built so far, each usable alone: `matcher.clearing` (the pure clearing core), `matcher.intake` (pure order
validation with stable rejection codes), `matcher.chain` (crash-safe root posting and a reorg-aware event
watcher, web3.py) and `matcher.store` (the durable store: SQLite by default, PostgreSQL by URL), tied
together by `matcher.service` (the batch loop) and served by `matcher.api` (FastAPI); `python -m matcher`
runs both. Still to come (issue 3): `verify-batch`, a kill -9 test of the whole matcher, the HTTP intake
benchmark.
"""
