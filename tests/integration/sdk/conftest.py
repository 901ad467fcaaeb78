"""Fixtures for the buyer SDK on Anvil: a real matcher process (fast evidence settings), a buyer with tokens
in its wallet but nothing in the escrow, and the provider agent's process helpers from the agent's tests."""

from __future__ import annotations

import sys
from pathlib import Path

# agent_process.py lives with the agent's end-to-end tests; reuse it rather than copy it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "provider_agent"))
