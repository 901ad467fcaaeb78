"""Posts each batch's settlement root with the operator key, at most once per batch id, across crashes.

The protocol (docs/chain.md tells it at length):

1. `posted(batch_id, root)` reads `lastBatchId()` and `batchRoot(batch_id)`: the same root already there means
   done (`PostedRoot`, found through its `RootPosted` event); a different root raises `RootConflictError`; no
   root but `lastBatchId >= batch_id` raises `BatchIdNotIncreasingError`; otherwise None.
2. `prepare(batch_id, root)` checks the same, then signs `postRoot(batch_id, root)` with the next nonce and
   the node's fees and returns a `SignedRootTx` (raw bytes, hash, nonce). The service stores it durably BEFORE
   sending: from then on it only ever sends those bytes.
3. `send(signed)` checks again and broadcasts (or returns the hash of the transaction that already posted the
   root); `wait(tx_hash)` waits for the receipt, at most `receipt_timeout` seconds, and returns a
   `PostedRoot`.
4. After a restart, `resume(batch_id, root, signed)` finishes the stored transaction: done if the root is on
   chain; waits if the transaction is mined; rebroadcasts the same bytes if it is neither mined nor replaced;
   raises `RootTxReplacedError` if another transaction took its nonce (then prepare and store a new one).

Because every send is of stored bytes whose nonce is fixed, at most one of them can be mined per nonce, and
the escrow itself refuses a second root for a batch id (ids strictly increase): a crash anywhere posts the
root at most once. Reads and rebroadcasts are retried with backoff (`RetryPolicy`); signing a new transaction
is not. `post(batch_id, root)` runs 1-3 in one call for callers that persist nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ABIEvent, BlockNumber, ChecksumAddress, HexStr
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import FilterParams, LogReceipt, TxParams, TxReceipt

from gpuspot.chain.fees import fees
from gpuspot.deployment import Deployment
from matcher.chain.abi import ESCROW, Abi, custom_errors, describe_revert, load_abi
from matcher.chain.errors import (
    BatchIdNotIncreasingError,
    ChainError,
    ChainMismatchError,
    InvalidRootError,
    NotOperatorError,
    RootConflictError,
    RootTxReplacedError,
    TransactionRevertedError,
    TransactionTimeoutError,
)
from matcher.chain.retry import RetryPolicy, endpoint_of

__all__ = ["PostedRoot", "RootAlreadyPostedError", "RootPoster", "SignedRootTx"]

log = logging.getLogger(__name__)

T = TypeVar("T")

UINT64_MAX = 2**64 - 1
ZERO_ROOT = bytes(32)


@dataclass(frozen=True)
class SignedRootTx:
    """A signed `postRoot` transaction, to be stored durably before it is sent."""

    batch_id: int
    root: bytes
    sender: ChecksumAddress
    nonce: int
    tx_hash: bytes
    raw: bytes

    def to_json(self) -> str:
        return json.dumps(
            {
                "batch_id": self.batch_id,
                "root": "0x" + self.root.hex(),
                "sender": self.sender,
                "nonce": self.nonce,
                "tx_hash": "0x" + self.tx_hash.hex(),
                "raw": "0x" + self.raw.hex(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SignedRootTx:
        try:
            raw = json.loads(text)
            return cls(
                batch_id=int(raw["batch_id"]),
                root=bytes(HexBytes(raw["root"])),
                sender=Web3.to_checksum_address(raw["sender"]),
                nonce=int(raw["nonce"]),
                tx_hash=bytes(HexBytes(raw["tx_hash"])),
                raw=bytes(HexBytes(raw["raw"])),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ChainError(f"stored root transaction is not valid ({exc}): {text[:200]}") from None


@dataclass(frozen=True)
class PostedRoot:
    """A root on-chain: the transaction that posted it, its block, the gas it used and the post time."""

    batch_id: int
    root: bytes
    tx_hash: bytes
    block_number: int
    gas_used: int
    posted_at: int


class RootAlreadyPostedError(ChainError):
    """`prepare` found the same root already on-chain: nothing to sign. `posted` says where it is."""

    def __init__(self, posted: PostedRoot) -> None:
        super().__init__(
            f"the root of batch {posted.batch_id} is already on-chain (tx 0x{posted.tx_hash.hex()}, block "
            f"{posted.block_number}): nothing to send; treat the batch as posted"
        )
        self.posted = posted


class RootPoster:
    """Signs and sends `Escrow.postRoot` with the operator's key; the module docstring tells the
    protocol."""

    def __init__(
        self,
        web3: Web3,
        escrow: str,
        account: LocalAccount,
        *,
        first_block: int = 0,
        receipt_timeout: float = 120.0,
        poll_interval: float = 0.5,
        log_search_range: int = 2_000,
        retry: RetryPolicy | None = None,
        abi: Abi | None = None,
    ) -> None:
        """`first_block` is where the escrow was deployed (the search for a posted root's event stops
        there)."""
        self._web3 = web3
        self._endpoint = endpoint_of(web3)
        self._account = account
        self._escrow_address = Web3.to_checksum_address(escrow)
        self._abi = abi or load_abi(ESCROW)
        self._escrow = web3.eth.contract(address=self._escrow_address, abi=list(self._abi))
        self._first_block = first_block
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self._log_search_range = log_search_range
        self._retry = retry or RetryPolicy()
        self._root_posted_topic = HexBytes(
            event_abi_to_log_topic(
                cast(
                    ABIEvent,
                    next(e for e in self._abi if e.get("type") == "event" and e["name"] == "RootPosted"),
                )
            )
        )
        self._errors = custom_errors(self._abi)

    @classmethod
    def from_deployment(
        cls, web3: Web3, deployment: Deployment, account: LocalAccount, **options: Any
    ) -> RootPoster:
        """A poster for `deployment`'s escrow. Refuses a node on another chain, an address without code, and a
        key that is not the escrow's operator."""
        poster = cls(web3, deployment.escrow, account, first_block=deployment.block_number, **options)
        chain_id = poster._read("read the chain id", lambda: web3.eth.chain_id)
        if chain_id != deployment.chain_id:
            raise ChainMismatchError(
                f"the node at {poster._endpoint} serves chain {chain_id}, but the deployment file is for "
                f"chain {deployment.chain_id}: point the matcher at the right RPC URL or deployment file"
            )
        code = poster._read("read the escrow's code", lambda: web3.eth.get_code(poster._escrow_address))
        if not code:
            raise ChainMismatchError(
                f"no contract at the escrow address {deployment.escrow} on chain {chain_id}: the deployment "
                "file is from another deployment (a restarted devnet?); redeploy or fix the file"
            )
        operator = poster._read("read the operator", lambda: poster._escrow.functions.operator().call())
        if Web3.to_checksum_address(operator) != account.address:
            raise NotOperatorError(
                f"the matcher's key {account.address} is not the escrow's operator ({operator}): the escrow "
                "would refuse its roots. Configure the operator's key, or have the owner call setOperator"
            )
        return poster

    @property
    def address(self) -> ChecksumAddress:
        return self._account.address

    # --- the protocol

    def posted(self, batch_id: int, root: bytes) -> PostedRoot | None:
        """The post of `root` for `batch_id` if the chain has it; None if the batch may still be posted.
        Raises `RootConflictError` or `BatchIdNotIncreasingError` if it may not."""
        _check_arguments(batch_id, root)
        last = int(self._read("read lastBatchId", lambda: self._escrow.functions.lastBatchId().call()))
        stored_root, posted_at = self._read(
            f"read batchRoot({batch_id})", lambda: self._escrow.functions.batchRoot(batch_id).call()
        )
        stored_root = bytes(stored_root)
        if stored_root == root:
            return self._find_post(batch_id, root, int(posted_at))
        if stored_root != ZERO_ROOT:
            raise RootConflictError(
                f"batch {batch_id} already has root 0x{stored_root.hex()} on-chain, not 0x{root.hex()}: the "
                "matcher cleared this batch differently before (a restart without its store?). Never post a "
                "second root for a batch: restore the batch from the store or move on to a new batch id"
            )
        if last >= batch_id:
            raise BatchIdNotIncreasingError(
                f"batch {batch_id} has no root, but the escrow's lastBatchId is already {last}: batch ids "
                f"must strictly increase. Number the next batch {last + 1} or more (is another matcher "
                "posting with this key?)"
            )
        return None

    def prepare(self, batch_id: int, root: bytes) -> SignedRootTx:
        """Signs `postRoot(batch_id, root)` with the next nonce and the node's current fees. Store the result
        durably before `send`. Raises `RootAlreadyPostedError` if the chain already has this root."""
        already = self.posted(batch_id, root)
        if already is not None:
            raise RootAlreadyPostedError(already)
        sender = self._account.address
        data = self._escrow.encode_abi("postRoot", args=[batch_id, root])
        call: TxParams = {"from": sender, "to": self._escrow_address, "data": data}
        gas = self._estimate_gas(call)
        nonce = int(
            self._read(
                "read the operator's nonce", lambda: self._web3.eth.get_transaction_count(sender, "pending")
            )
        )
        chain_id = int(self._read("read the chain id", lambda: self._web3.eth.chain_id))
        tx: dict[str, Any] = {
            "chainId": chain_id,
            "nonce": nonce,
            "to": self._escrow_address,
            "data": data,
            "value": 0,
            "gas": gas,
            **self._fees(),
        }
        signed = self._account.sign_transaction(tx)
        result = SignedRootTx(
            batch_id=batch_id,
            root=root,
            sender=sender,
            nonce=nonce,
            tx_hash=bytes(signed.hash),
            raw=bytes(signed.raw_transaction),
        )
        log.info("signed root of batch %d: tx 0x%s, nonce %d", batch_id, result.tx_hash.hex(), nonce)
        return result

    def send(self, signed: SignedRootTx) -> bytes:
        """Broadcasts the stored transaction, unless the root is already on-chain; returns the hash to `wait`
        on (that of the transaction that posted the root, if it already did)."""
        already = self.posted(signed.batch_id, signed.root)
        if already is not None:
            log.info("root of batch %d already on-chain in tx 0x%s", signed.batch_id, already.tx_hash.hex())
            return already.tx_hash
        self._broadcast(signed)
        return signed.tx_hash

    def wait(self, tx_hash: bytes, timeout: float | None = None) -> PostedRoot:
        """Waits for the receipt of a root transaction; `TransactionTimeoutError` after `timeout` seconds
        (default `receipt_timeout`): it may still be mined, so resume rather than prepare anew."""
        deadline = time.monotonic() + (self.receipt_timeout if timeout is None else timeout)
        while True:
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                return self._posted_from(receipt)
            if time.monotonic() >= deadline:
                raise TransactionTimeoutError(
                    f"root transaction 0x{tx_hash.hex()} was not mined within "
                    f"{self.receipt_timeout if timeout is None else timeout:.0f}s (fees too low, or the node "
                    "does not propagate it): call resume with the stored transaction; do not prepare a new "
                    "one"
                )
            time.sleep(self.poll_interval)

    def resume(self, batch_id: int, root: bytes, signed: SignedRootTx) -> PostedRoot:
        """Finishes posting after a restart with the transaction stored by `prepare`."""
        if (signed.batch_id, signed.root) != (batch_id, root) or signed.sender != self._account.address:
            raise ChainError(
                f"the stored transaction posts batch {signed.batch_id} root 0x{signed.root.hex()} from "
                f"{signed.sender}, not batch {batch_id} root 0x{root.hex()} from {self._account.address}: "
                "the store mixed up its records"
            )
        already = self.posted(batch_id, root)
        if already is not None:
            log.info("resume: root of batch %d already on-chain in tx 0x%s", batch_id, already.tx_hash.hex())
            return already
        receipt = self._receipt(signed.tx_hash)
        if receipt is not None:  # mined after the check above: report it (or its revert)
            return self._posted_from(receipt)
        confirmed = int(
            self._read(
                "read the operator's nonce",
                lambda: self._web3.eth.get_transaction_count(signed.sender, "latest"),
            )
        )
        if confirmed > signed.nonce:
            self._raise_if_replaced(signed)
        log.info("resume: rebroadcasting root of batch %d (tx 0x%s)", batch_id, signed.tx_hash.hex())
        self._broadcast(signed)
        return self.wait(signed.tx_hash)

    def post(self, batch_id: int, root: bytes) -> PostedRoot:
        """check, prepare, send and wait in one call (nothing persisted: use the steps in a service)."""
        already = self.posted(batch_id, root)
        if already is not None:
            return already
        return self.wait(self.send(self.prepare(batch_id, root)))

    # --- steps

    def _broadcast(self, signed: SignedRootTx) -> None:
        """Sends the stored bytes; resending them is idempotent, so transport failures are retried and
        "already known" counts as sent."""
        try:
            self._read(
                f"broadcast tx 0x{signed.tx_hash.hex()}",
                lambda: self._web3.eth.send_raw_transaction(signed.raw),
            )
        except Web3RPCError as exc:
            message = str(exc).lower()
            if "already known" in message or "known transaction" in message or "already imported" in message:
                return
            if "nonce too low" in message or "nonce is too low" in message:
                if self._receipt(signed.tx_hash) is not None:
                    return
                self._raise_if_replaced(signed)
            raise TransactionRevertedError(
                f"the node at {self._endpoint} refused root transaction 0x{signed.tx_hash.hex()} of batch "
                f"{signed.batch_id}: {exc}"
            ) from exc

    def _raise_if_replaced(self, signed: SignedRootTx) -> None:
        """The nonce is used: either by this transaction (mined: fine) or by another one."""
        if self._receipt(signed.tx_hash) is not None:
            return
        if self.posted(signed.batch_id, signed.root) is not None:
            return
        raise RootTxReplacedError(
            f"nonce {signed.nonce} of {signed.sender} was used by another transaction and batch "
            f"{signed.batch_id} has no root on-chain: tx 0x{signed.tx_hash.hex()} can never be mined. "
            "Prepare a new root transaction, store it, and send that (is something else sending with the "
            "operator's key?)"
        )

    def _posted_from(self, receipt: TxReceipt) -> PostedRoot:
        tx_hash = bytes(receipt["transactionHash"])
        if receipt["status"] != 1:
            raise TransactionRevertedError(
                f"root transaction 0x{tx_hash.hex()} reverted in block {receipt['blockNumber']}: "
                f"{self._replay_revert(tx_hash)}"
            )
        for entry in receipt["logs"]:
            if (
                Web3.to_checksum_address(entry["address"]) == self._escrow_address
                and entry["topics"]
                and bytes(entry["topics"][0]) == bytes(self._root_posted_topic)
            ):
                event = self._escrow.events.RootPosted().process_log(entry)
                return PostedRoot(
                    batch_id=int(event["args"]["batchId"]),
                    root=bytes(event["args"]["root"]),
                    tx_hash=tx_hash,
                    block_number=int(receipt["blockNumber"]),
                    gas_used=int(receipt["gasUsed"]),
                    posted_at=int(event["args"]["postedAt"]),
                )
        raise ChainError(f"transaction 0x{tx_hash.hex()} posted no root (no RootPosted event of the escrow)")

    def _find_post(self, batch_id: int, root: bytes, posted_at: int) -> PostedRoot:
        """The transaction that posted `batch_id`'s root, by its RootPosted event (batchId is indexed),
        searched backwards from the head: a post being recovered is usually recent."""
        head = int(self._read("read the block number", lambda: self._web3.eth.block_number))
        topic_batch = HexBytes(batch_id.to_bytes(32, "big")).to_0x_hex()
        end = head
        while end >= self._first_block:
            start = max(self._first_block, end - self._log_search_range + 1)
            params: FilterParams = {
                "fromBlock": BlockNumber(start),
                "toBlock": BlockNumber(end),
                "address": self._escrow_address,
                "topics": [HexStr(self._root_posted_topic.to_0x_hex()), HexStr(topic_batch)],
            }
            logs = self._get_logs(f"find RootPosted({batch_id}) in blocks {start}..{end}", params)
            if logs:
                receipt = self._receipt(bytes(logs[-1]["transactionHash"]))
                if receipt is not None:
                    return self._posted_from(receipt)
            end = start - 1
        raise ChainError(
            f"batch {batch_id} has root 0x{root.hex()} (posted at {posted_at}) but no RootPosted event was "
            f"found from block {self._first_block}: is first_block right for this escrow?"
        )

    def _get_logs(self, what: str, params: FilterParams) -> list[LogReceipt]:
        return list(self._read(what, lambda: self._web3.eth.get_logs(params)))

    def _estimate_gas(self, call: TxParams) -> int:
        try:
            estimate = self._read("estimate gas", lambda: self._web3.eth.estimate_gas(call))
        except (ContractCustomError, ContractLogicError) as exc:
            raise TransactionRevertedError(
                f"postRoot would revert: {self._describe_revert(exc)}. Check the batch id and root against "
                "the escrow's lastBatchId and the operator role"
            ) from exc
        return int(estimate * 5 // 4) + 10_000  # headroom: the estimate is for the current block's state

    def _fees(self) -> dict[str, int]:
        return self._read("read the fees", lambda: fees(self._web3))

    def _receipt(self, tx_hash: bytes) -> TxReceipt | None:
        def fetch() -> TxReceipt | None:
            try:
                return self._web3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None

        return self._read(f"read the receipt of 0x{tx_hash.hex()}", fetch)

    def _replay_revert(self, tx_hash: bytes) -> str:
        """Why a mined transaction reverted, by replaying it as a call at its block's parent state."""
        try:
            tx = self._web3.eth.get_transaction(HexBytes(tx_hash))
            self._web3.eth.call(
                {"from": tx["from"], "to": tx["to"], "data": tx["input"]},
                BlockNumber(int(tx["blockNumber"]) - 1),
            )
        except (ContractCustomError, ContractLogicError) as exc:
            return self._describe_revert(exc)
        except Exception as exc:  # best effort: the revert itself is what matters
            return f"reason unknown ({type(exc).__name__}: {exc})"
        return "reason unknown (the replay did not revert)"

    def _describe_revert(self, exc: ContractLogicError) -> str:
        return describe_revert(self._errors, exc)

    def _read(self, what: str, operation: Callable[[], T]) -> T:
        return self._retry.call(what, operation, endpoint=self._endpoint)


def _check_arguments(batch_id: int, root: bytes) -> None:
    if not 0 < batch_id <= UINT64_MAX:
        raise InvalidRootError(f"batch id {batch_id} is not a positive uint64")
    if len(root) != 32 or root == ZERO_ROOT:
        raise InvalidRootError(f"root must be 32 bytes and not zero, got 0x{bytes(root).hex()}")
