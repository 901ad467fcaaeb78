# Shared by the project's shell commands: where things are, and how they report. Source it; do not run it.
GPUSPOT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GPUSPOT_VENV="${GPUSPOT_VENV:-$GPUSPOT_ROOT/.venv}"
GPUSPOT_NODE_BIN="$GPUSPOT_ROOT/contracts/node_modules/.bin"
# Native anvil/forge/cast, linked by bootstrap: they keep their exit status, npm's launchers do not.
GPUSPOT_FOUNDRY_BIN="$GPUSPOT_ROOT/contracts/node_modules/.foundry-bin"
export PATH="$GPUSPOT_VENV/bin:$GPUSPOT_FOUNDRY_BIN:$GPUSPOT_NODE_BIN:$PATH"
# keccak through the C extension (~8x pycryptodome); eth-hash reads this once at import.
export ETH_HASH_BACKEND="${ETH_HASH_BACKEND:-pysha3}"

step() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '\033[31m[%s] error:\033[0m %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
