"""`python -m gpuspot.cli`: the same as the `gpuspot` console script."""

import sys

from gpuspot.cli import main

sys.exit(main())
