"""gpuspot matcher: order intake, frequent batch auctions, settlement roots, chain watcher and API.

Not built yet (issue 3). The contracts it drives and the shared protocol it uses are in `contracts/` and
`gpuspot.protocol`.
"""
