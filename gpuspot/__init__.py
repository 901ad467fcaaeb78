"""gpuspot: a decentralized spot market for GPU compute.

The package holds what every participant shares: the order and settlement protocol (`gpuspot.protocol`),
the deployment file (`gpuspot.deployment`) and the deployment procedure (`gpuspot.deploy`). The matcher and
the provider agent live in their own top-level packages and import from here.
"""

__version__ = "0.1.0"
