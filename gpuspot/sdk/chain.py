"""The buyer's side of the contracts, with web3.py: reads (balances, the escrow's ledger, batch roots) and the
buyer's few transactions (approve, deposit, withdrawal requests, the devnet faucet).

Each transaction is estimated first, so a call that would revert raises `ChainError` with the contract's
custom error decoded (`EscrowWithdrawalNotYetAvailable(account=..., availableAt=...)`) and nothing is sent;
then signed locally, sent, and waited for. Failing to reach the node is a `ChainError` naming the RPC URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, cast

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from requests.exceptions import RequestException
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3Exception
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt

from gpuspot.chain import ESCROW, TEST_STABLECOIN, custom_errors, describe_revert, fees, load_abi
from gpuspot.sdk.errors import ChainError

__all__ = ["BuyerChain", "SentTx"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ZERO_WORD = b"\x00" * 32


class SentTx:
    """A mined transaction: its hash (0x hex) and receipt."""

    def __init__(self, tx_hash: str, receipt: TxReceipt) -> None:
        self.tx_hash = tx_hash
        self.receipt = receipt


class BuyerChain:
    """The node at `rpc_url`, the escrow and the token at the addresses the market publishes."""

    def __init__(self, rpc_url: str, *, timeout: float = 10.0, receipt_timeout: float = 120.0) -> None:
        self.rpc_url = rpc_url
        self.web3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        self.receipt_timeout = receipt_timeout
        self._escrow: Any = None
        self._token: Any = None
        self._errors: dict[bytes, dict[str, Any]] = {}

    def call(self, what: str, read: Callable[[], T]) -> T:
        """`read()`, with the node's failures as `ChainError`s that say what was being done."""
        try:
            return read()
        except (ContractCustomError, ContractLogicError) as exc:
            raise ChainError(f"{what} reverted: {describe_revert(self._errors, exc)}") from None
        except (RequestException, OSError) as exc:
            raise ChainError(
                f"cannot reach the node at {self.rpc_url} ({type(exc).__name__}) while {what}: start it "
                "(e.g. `anvil`) or point --rpc-url / GPUSPOT_BUYER_RPC_URL at a running one"
            ) from None
        except Web3Exception as exc:
            raise ChainError(f"the node at {self.rpc_url} failed while {what}: {exc}") from None

    def chain_id(self) -> int:
        return self.call("reading the chain id", lambda: int(self.web3.eth.chain_id))

    def bind(self, escrow: str, token: str) -> None:
        """Binds the contracts (ABIs from the compiled artifacts) and checks that the escrow has code."""
        escrow_abi = list(load_abi(ESCROW))
        token_abi = list(load_abi(TEST_STABLECOIN))
        self._errors = custom_errors(tuple(escrow_abi), tuple(token_abi))
        self._escrow = self.web3.eth.contract(address=Web3.to_checksum_address(escrow), abi=escrow_abi)
        self._token = self.web3.eth.contract(address=Web3.to_checksum_address(token), abi=token_abi)
        code = self.call("reading the escrow's code", lambda: self.web3.eth.get_code(self._escrow.address))
        if not code:
            raise ChainError(
                f"no contract at the escrow address {escrow} on the node at {self.rpc_url}: the matcher and "
                "the node belong to different deployments (a restarted devnet?); point both at the same one"
            )

    @property
    def escrow(self) -> Any:
        if self._escrow is None:
            raise ChainError("the contracts are not bound yet: read the market first (Buyer.market)")
        return self._escrow

    @property
    def token(self) -> Any:
        if self._token is None:
            raise ChainError("the contracts are not bound yet: read the market first (Buyer.market)")
        return self._token

    # --- reads

    def latest_time(self) -> int:
        return self.call(
            "reading the latest block", lambda: int(self.web3.eth.get_block("latest")["timestamp"])
        )

    def block_hash(self, number: int) -> bytes | None:
        def read() -> bytes | None:
            try:
                return bytes(self.web3.eth.get_block(number)["hash"])
            except Web3Exception:
                return None

        return self.call(f"reading block {number}", read)

    def batch_root(self, batch_id: int) -> tuple[bytes, int]:
        """(root, postedAt) of a batch as the escrow holds it (a zero root when none was posted)."""
        root, posted_at = self.call(
            f"reading the root of batch {batch_id}", lambda: self.escrow.functions.batchRoot(batch_id).call()
        )
        return bytes(root), int(posted_at)

    def locked_leaf(self, bid_digest: bytes) -> bytes:
        return bytes(
            self.call("reading a locked leaf", lambda: self.escrow.functions.lockedLeaf(bid_digest).call())
        )

    def settled_events(self, lease_id: int, from_block: int) -> list[dict[str, Any]]:
        logs = self.call(
            f"reading the settlements of lease {lease_id}",
            lambda: self.escrow.events.LeaseSettled().get_logs(
                from_block=from_block, argument_filters={"leaseId": lease_id}
            ),
        )
        return [dict(entry["args"]) for entry in logs]

    # --- transactions

    def send(self, account: LocalAccount, what: str, function: Any) -> SentTx:
        """Estimates (a revert raises `ChainError`, nothing sent), signs, sends and waits for the receipt."""
        sender = str(account.address)
        gas = self.call(what, lambda: int(function.estimate_gas({"from": sender})))

        def build() -> TxParams:
            nonce = self.web3.eth.get_transaction_count(account.address, "pending")
            params: TxParams = function.build_transaction(
                cast(
                    TxParams,
                    {"from": sender, "nonce": nonce, "gas": gas * 5 // 4 + 20_000, "chainId": self.chain_id()}
                    | fees(self.web3),
                )
            )
            return params

        tx = self.call(what, build)
        signed = account.sign_transaction(cast(Any, tx))
        tx_hash = "0x" + bytes(signed.hash).hex()
        self.call(what, lambda: self.web3.eth.send_raw_transaction(signed.raw_transaction))
        log.info("%s: sent %s", what, tx_hash)

        def wait() -> TxReceipt:
            try:
                return self.web3.eth.wait_for_transaction_receipt(
                    HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=0.2
                )
            except TimeExhausted:
                raise ChainError(
                    f"{what}: {tx_hash} was not mined within {self.receipt_timeout:.0f} s; it may still be. "
                    "Check it on the node before sending again"
                ) from None

        receipt = self.call(what, wait)
        if int(receipt["status"]) != 1:
            raise ChainError(f"{what}: {tx_hash} was mined but reverted")
        return SentTx(tx_hash, receipt)

    def withdrawn_amount(self, receipt: TxReceipt) -> int:
        events = self.escrow.events.Withdrawn().process_receipt(receipt, errors=DISCARD)
        return sum(int(event["args"]["amount"]) for event in events)
