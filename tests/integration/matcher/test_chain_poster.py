"""The root poster on Anvil: one root per batch id, whatever crashes, retries and mistakes come between."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from matcher.chain import (
    BatchIdNotIncreasingError,
    ChainMismatchError,
    ChainWatcher,
    NotOperatorError,
    RetryPolicy,
    RootAlreadyPostedError,
    RootConflictError,
    RootPoster,
    RootTxReplacedError,
    RpcUnavailableError,
    SignedRootTx,
    TransactionTimeoutError,
)
from matcher.chain.events import RootPosted

ROOT_A = b"\xaa" * 32
ROOT_B = b"\xbb" * 32


def root_posts(web3, make_watcher, deployment) -> list[RootPosted]:
    """Every RootPosted event since the deployment."""
    watcher = make_watcher()
    items, _ = watcher.poll(watcher.start_cursor(deployment))
    return [item for item in items if isinstance(item, RootPosted)]


def test_post_root_writes_it_on_chain_and_reports_the_receipt(poster, escrow, web3):
    posted = poster.post(1, ROOT_A)

    assert (posted.batch_id, posted.root) == (1, ROOT_A)
    stored = escrow.batchRoot(1)
    assert bytes(stored.root) == ROOT_A and escrow.lastBatchId() == 1
    receipt = web3.eth.get_transaction_receipt(posted.tx_hash)
    assert (posted.block_number, posted.gas_used) == (receipt["blockNumber"], receipt["gasUsed"])
    assert posted.posted_at == stored.postedAt == web3.eth.get_block(posted.block_number)["timestamp"]
    assert 0 < posted.gas_used < 100_000


def test_posting_the_same_root_again_is_idempotent(
    poster, make_poster, web3, operator_key, make_watcher, deployment
):
    signed = poster.prepare(1, ROOT_A)
    first = poster.wait(poster.send(signed))
    nonce = web3.eth.get_transaction_count(operator_key.address)

    again = make_poster()
    assert again.post(1, ROOT_A) == first
    assert again.posted(1, ROOT_A) == first
    assert again.send(signed) == first.tx_hash  # the stored bytes are not broadcast again
    with pytest.raises(RootAlreadyPostedError) as info:
        again.prepare(1, ROOT_A)
    assert info.value.posted == first
    assert web3.eth.get_transaction_count(operator_key.address) == nonce
    assert [(e.batch_id, e.root) for e in root_posts(web3, make_watcher, deployment)] == [(1, ROOT_A)]


def test_a_different_root_for_a_posted_batch_is_refused(poster, escrow):
    poster.post(1, ROOT_A)
    with pytest.raises(RootConflictError, match="already has root 0xaaaa"):
        poster.post(1, ROOT_B)
    with pytest.raises(RootConflictError):
        poster.prepare(1, ROOT_B)
    assert bytes(escrow.batchRoot(1).root) == ROOT_A


def test_a_batch_id_at_or_below_the_last_one_is_refused(poster, escrow):
    poster.post(5, ROOT_A)
    with pytest.raises(BatchIdNotIncreasingError, match="lastBatchId is already 5.*Number the next batch 6"):
        poster.post(3, ROOT_B)
    with pytest.raises(BatchIdNotIncreasingError):
        poster.prepare(4, ROOT_B)
    assert escrow.lastBatchId() == 5 and bytes(escrow.batchRoot(3).root) == bytes(32)


def test_crash_after_prepare_then_resume_posts_exactly_once(
    make_poster, web3, operator_key, make_watcher, deployment
):
    nonce = web3.eth.get_transaction_count(operator_key.address)
    stored = make_poster().prepare(2, ROOT_A).to_json()  # the service persists this, then crashes

    restarted = make_poster()
    signed = SignedRootTx.from_json(stored)
    assert signed.nonce == nonce and restarted.posted(2, ROOT_A) is None
    posted = restarted.resume(2, ROOT_A, signed)
    assert posted.tx_hash == signed.tx_hash and posted.batch_id == 2

    assert make_poster().resume(2, ROOT_A, signed) == posted  # a second crash and resume changes nothing
    assert web3.eth.get_transaction_count(operator_key.address) == nonce + 1
    assert [(e.batch_id, e.tx_hash) for e in root_posts(web3, make_watcher, deployment)] == [
        (2, signed.tx_hash)
    ]


def test_crash_after_send_then_resume_finds_the_mined_transaction(make_poster, web3, operator_key):
    poster = make_poster()
    signed = poster.prepare(2, ROOT_A)
    poster.send(signed)  # mined (automine), then the service crashes before recording the receipt
    posted = make_poster().resume(2, ROOT_A, signed)
    assert posted.tx_hash == signed.tx_hash
    assert web3.eth.get_transaction_count(operator_key.address) == signed.nonce + 1


def test_a_timed_out_transaction_is_finished_by_resume_not_by_a_new_one(make_poster, web3, operator_key):
    poster = make_poster()
    web3.provider.make_request("evm_setAutomine", [False])
    try:
        signed = poster.prepare(3, ROOT_A)
        assert poster.send(signed) == signed.tx_hash
        with pytest.raises(TransactionTimeoutError, match="call resume"):
            poster.wait(signed.tx_hash, timeout=0.1)
        web3.provider.make_request("evm_setIntervalMining", [1])
        posted = make_poster().resume(3, ROOT_A, signed)  # rebroadcast: the node already knows it
    finally:
        web3.provider.make_request("evm_setIntervalMining", [0])
        web3.provider.make_request("evm_setAutomine", [True])
    assert posted.tx_hash == signed.tx_hash
    assert web3.eth.get_transaction_count(operator_key.address) == signed.nonce + 1


def test_a_stored_transaction_whose_nonce_was_taken_is_reported_replaced(
    make_poster, token, operator, escrow
):
    signed = make_poster().prepare(3, ROOT_A)
    token.mint(operator, 1, sender=operator)  # something else used the operator's nonce
    with pytest.raises(RootTxReplacedError, match=f"nonce {signed.nonce} .* Prepare a new root transaction"):
        make_poster().resume(3, ROOT_A, signed)
    with pytest.raises(RootTxReplacedError):
        make_poster().send(signed)
    fresh = make_poster().prepare(3, ROOT_A)
    assert fresh.nonce == signed.nonce + 1
    assert make_poster().resume(3, ROOT_A, fresh).batch_id == 3
    assert bytes(escrow.batchRoot(3).root) == ROOT_A


def test_from_deployment_refuses_a_key_that_is_not_the_operator_or_another_chain(web3, deployment, stranger):
    with pytest.raises(NotOperatorError, match="not the escrow's operator"):
        RootPoster.from_deployment(web3, deployment, Account.from_key(stranger.private_key))
    with pytest.raises(ChainMismatchError, match="deployment file is for chain 1"):
        RootPoster.from_deployment(
            web3, deployment.model_copy(update={"chain_id": 1}), Account.from_key(stranger.private_key)
        )


def test_an_unreachable_node_raises_rpc_unavailable_with_what_to_check(deployment):
    dead = Web3(HTTPProvider("http://127.0.0.1:9", exception_retry_configuration=None))
    retry = RetryPolicy(attempts=2, initial_delay=0.01)
    watcher = ChainWatcher(dead, deployment.escrow, deployment.registry, retry=retry)
    with pytest.raises(RpcUnavailableError, match=r"127\.0\.0\.1:9 did not answer after 2 attempts.*Check"):
        watcher.poll(watcher.start_cursor(deployment))
