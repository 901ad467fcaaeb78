"""The provider's transactions: registration and stake, locking leases, settling usage.

Every transaction is signed, stored in the agent's state, and only then broadcast; a restarted agent finds it
there and waits for it (rebroadcasting the same bytes) instead of signing a second one. A call that would
revert is caught by the gas estimate before anything is stored or sent, with the contract's custom error
decoded, so a bad proof or a lapsed lease changes nothing and says why. Leases of several batches go out as
one `multicall`: one transaction's overhead for everything the agent has to lock or settle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, TransactionNotFound
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt

from gpuspot.chain.abi import ESCROW, PROVIDER_REGISTRY, custom_errors, describe_revert, load_abi
from gpuspot.chain.fees import fees
from gpuspot.deployment import Deployment
from provider_agent.state import AgentState, TxRow

__all__ = ["CallReverted", "ProviderChain", "SentTx"]

log = logging.getLogger(__name__)

TOKEN = "TestStablecoin"
"""Its ABI serves the settlement token's ERC20 calls (approve, allowance, balanceOf): any ERC20 has them."""


class CallReverted(Exception):
    """The call would revert (caught by the gas estimate, nothing sent) or did revert on-chain."""


@dataclass(frozen=True)
class SentTx:
    """A mined transaction: its hash, status, gas, and what each lease was paid (from `LeaseSettled`)."""

    tx_hash: str
    ok: bool
    gas_used: int
    paid: dict[int, int]


class ProviderChain:
    """The provider's account on the market's contracts."""

    def __init__(
        self,
        web3: Web3,
        deployment: Deployment,
        account: LocalAccount,
        state: AgentState,
        *,
        receipt_timeout: float = 120.0,
    ) -> None:
        self.web3 = web3
        self.deployment = deployment
        self.account = account
        self.state = state
        self.receipt_timeout = receipt_timeout
        self.escrow_abi = list(load_abi(ESCROW))
        self.registry_abi = list(load_abi(PROVIDER_REGISTRY))
        self._errors = custom_errors(tuple(self.escrow_abi), tuple(self.registry_abi))
        self.escrow = web3.eth.contract(
            address=Web3.to_checksum_address(deployment.escrow), abi=self.escrow_abi
        )
        self.registry = web3.eth.contract(
            address=Web3.to_checksum_address(deployment.registry), abi=self.registry_abi
        )
        self.token = web3.eth.contract(
            address=Web3.to_checksum_address(deployment.token), abi=list(load_abi(TOKEN))
        )

    @property
    def address(self) -> str:
        return str(self.account.address)

    def check_chain(self) -> None:
        chain_id = self.web3.eth.chain_id
        if chain_id != self.deployment.chain_id:
            raise RuntimeError(
                f"the node serves chain {chain_id} but the deployment file is for chain "
                f"{self.deployment.chain_id}: point the agent at the right RPC URL or deployment file"
            )
        if not self.web3.eth.get_code(self.escrow.address):
            raise RuntimeError(
                f"no contract at the escrow address {self.escrow.address}: the deployment file is from "
                "another deployment (a restarted devnet?)"
            )

    # --- reads

    def is_active(self) -> bool:
        return bool(self.registry.functions.isActive(self.address).call())

    def token_balance(self) -> int:
        return int(self.token.functions.balanceOf(self.address).call())

    def is_locked(self, bid_digest: bytes) -> bool:
        """Whether the bid's lease is locked and not closed (its locked leaf is recorded)."""
        return bytes(self.escrow.functions.lockedLeaf(bid_digest).call()) != b"\x00" * 32

    # --- registration

    def ensure_registered(self, stake: int, metadata_hash: bytes) -> bool:
        """Registers with `stake` (approving the registry first) unless already active; True if it sent
        anything. Refuses when the token balance cannot cover the stake, with the figures."""
        if self.is_active():
            log.info("provider %s is registered and active", self.address)
            return False
        minimum = int(self.registry.functions.minStake().call())
        if stake < minimum:
            raise RuntimeError(f"stake {stake} is below the registry's minimum {minimum}: raise `stake`")
        balance = self.token_balance()
        if balance < stake:
            raise RuntimeError(
                f"the provider {self.address} holds {balance} token base units but the stake is {stake}: "
                "fund "
                "the provider first (on a devnet, TestStablecoin.mint)"
            )
        if int(self.token.functions.allowance(self.address, self.registry.address).call()) < stake:
            self.send("approve", self.token.functions.approve(self.registry.address, stake))
        sent = self.send("register", self.registry.functions.register(metadata_hash, stake))
        if not sent.ok:
            raise CallReverted(f"register reverted in {sent.tx_hash}")
        log.info(
            "registered provider %s with stake %d (metadata 0x%s)", self.address, stake, metadata_hash.hex()
        )
        return True

    # --- leases

    def multicall(
        self,
        kind: str,
        calls: Sequence[tuple[str, list[Any]]],
        lease_ids: Sequence[int],
        settlements: Sequence[tuple[int, int, int, bool]] = (),
    ) -> SentTx:
        """One transaction for all `calls` ((escrow function name, args) pairs): the call itself when there
        is one, else `multicall`."""
        if len(calls) == 1:
            name, args = calls[0]
            function = self.escrow.get_function_by_name(name)(*args)
        else:
            data = [HexBytes(self.escrow.encode_abi(name, args=args)) for name, args in calls]
            function = self.escrow.functions.multicall(data)
        return self.send(kind, function, lease_ids=lease_ids, settlements=settlements)

    # --- transactions

    def send(
        self,
        kind: str,
        function: Any,
        *,
        lease_ids: Sequence[int] = (),
        settlements: Sequence[tuple[int, int, int, bool]] = (),
    ) -> SentTx:
        """Estimates (a revert raises `CallReverted`, nothing stored), signs, stores, broadcasts, waits."""
        try:
            gas = int(function.estimate_gas({"from": self.address}))
        except (ContractCustomError, ContractLogicError) as exc:
            raise CallReverted(f"{kind} would revert: {describe_revert(self._errors, exc)}") from None
        nonce = self.web3.eth.get_transaction_count(self.account.address, "pending")
        tx: TxParams = function.build_transaction(
            {
                "from": self.address,
                "nonce": nonce,
                "gas": gas * 5 // 4 + 20_000,
                "chainId": self.deployment.chain_id,
            }
            | fees(self.web3)
        )
        signed = self.account.sign_transaction(cast(Any, tx))
        tx_hash = "0x" + bytes(signed.hash).hex()
        self.state.add_tx(
            tx_hash,
            kind,
            nonce,
            "0x" + bytes(signed.raw_transaction).hex(),
            lease_ids,
            int(time.time()),
            settlements,
        )
        self.web3.eth.send_raw_transaction(signed.raw_transaction)
        log.info("%s: sent %s (nonce %d, leases %s)", kind, tx_hash, nonce, list(lease_ids) or "-")
        return self._wait(tx_hash, kind)

    def resume(self) -> list[SentTx]:
        """Settles every transaction stored as sent by an earlier run: waits for its receipt, rebroadcasting
        the stored bytes if the node lost it; marks it dropped once a later transaction took its nonce."""
        results = []
        for row in self.state.pending_txs():
            receipt = self._receipt(row.tx_hash)
            if receipt is None:
                if self.web3.eth.get_transaction_count(self.account.address, "latest") > row.nonce:
                    log.warning(
                        "%s %s: its nonce was used by another transaction; dropped", row.kind, row.tx_hash
                    )
                    self.state.finish_tx(row.tx_hash, "dropped", None)
                    continue
                self._rebroadcast(row)
            results.append(self._wait(row.tx_hash, row.kind))
        return results

    def _rebroadcast(self, row: TxRow) -> None:
        try:
            self.web3.eth.send_raw_transaction(HexBytes(row.raw))
            log.info("%s %s: rebroadcast after a restart", row.kind, row.tx_hash)
        except Exception as exc:  # "already known" and the like: waiting decides
            log.info("%s %s: rebroadcast answered %s", row.kind, row.tx_hash, exc)

    def _wait(self, tx_hash: str, kind: str) -> SentTx:
        try:
            receipt = self.web3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=0.2
            )
        except TimeExhausted:
            raise CallReverted(
                f"{kind} {tx_hash} not mined within {self.receipt_timeout}s; will resume"
            ) from None
        ok = int(receipt["status"]) == 1
        paid = self._paid(receipt) if ok else {}
        self.state.finish_tx(tx_hash, "mined" if ok else "reverted", int(receipt["gasUsed"]), paid)
        log.info(
            "%s %s: %s in block %d, gas %d",
            kind,
            tx_hash,
            "mined" if ok else "REVERTED",
            receipt["blockNumber"],
            receipt["gasUsed"],
        )
        return SentTx(tx_hash, ok, int(receipt["gasUsed"]), paid)

    def _paid(self, receipt: TxReceipt) -> dict[int, int]:
        paid: dict[int, int] = {}
        for event in self.escrow.events.LeaseSettled().process_receipt(receipt, errors=DISCARD):
            paid[int(event["args"]["leaseId"])] = int(event["args"]["paid"])
        return paid

    def _receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            return self.web3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
