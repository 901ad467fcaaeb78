"""The devnet: a whole local market (Anvil, contracts, matcher, provider agents, a scripted buyer) started by
`./scripts/devnet` (`python -m gpuspot.devnet`); see docs/devnet.md."""
