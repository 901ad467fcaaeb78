"""gpuspot provider agent: the daemon on a GPU host that sells capacity, runs leased jobs and proves delivery.

Not built yet (issue 4).
"""
