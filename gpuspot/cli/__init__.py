"""The `gpuspot` buyer command line, over `gpuspot.sdk` (docs/sdk.md). `main()` is the console script."""

from gpuspot.cli.app import main

__all__ = ["main"]
