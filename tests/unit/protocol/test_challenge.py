"""PoW challenges: the generator pinned, exact products, and verdicts for each kind of bad answer."""

from __future__ import annotations

import base64
import struct

import numpy as np
import pytest
from eth_abi import encode as eth_abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuspot.protocol import keccak256
from gpuspot.protocol.challenge import (
    AUDIT_SEED_TAG,
    CHALLENGE_SEED_TAG,
    MAX_N,
    MAX_PRODUCT_RESPONSE_N,
    PRODUCT_BOUND,
    ROW_LEAF_TAG,
    Answer,
    Challenge,
    InvalidChallengeError,
    MalformedAnswerError,
    MatmulBackendError,
    OpenedRow,
    Outcome,
    ProductResponse,
    ProtocolError,
    RowOpening,
    _exact_product,
    answer,
    challenge_matrices,
    challenge_rows,
    challenge_seed,
    draw_audit,
    numpy_matmul,
    philox4x32_10,
    product_bytes,
    product_root,
    verify,
    verify_opening,
)

BLOCK = keccak256(b"gpuspot challenge test block")
ISSUED = 1_700_000_000_000
VERIFIER = keccak256(b"verifier")


def challenge(n: int = 64, *, lease_id: int = 1, sequence: int = 0, deadline_ms: int = 5_000) -> Challenge:
    return Challenge.derive(BLOCK, lease_id, sequence, n, issued_at_ms=ISSUED, deadline_ms=deadline_ms)


def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int64) @ b.astype(np.int64)


def tampered_response(ans: Answer, row: int, col: int, delta: int) -> ProductResponse:
    """A response whose product differs from A @ B in one entry, with the root recomputed to match it, so only
    Freivalds can catch it."""
    product = ans.product.copy()
    product[row, col] += delta
    c = ans.challenge
    return ProductResponse(c.lease_id, c.sequence, c.n, product_root(product), product_bytes(product))


# --- the generator ----------------------------------------------------------------------------------------


def philox_scalar(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """Philox4x32-10 written independently from the paper, one block at a time in Python integers."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + 0x9E3779B9) % 2**32, (k1 + 0xBB67AE85) % 2**32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 % 2**32, (p0 >> 32) ^ c3 ^ k1, p0 % 2**32
    return c0, c1, c2, c3


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [  # Random123 tests/kat_vectors, the three "philox4x32 10" lines
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_matches_random123_known_answers(counter, key, expected):
    words = philox4x32_10(tuple(np.array([w], dtype=np.uint64) for w in counter), key)
    assert tuple(int(w[0]) for w in words) == expected
    assert philox_scalar(counter, key) == expected


def test_matrices_follow_the_documented_construction():
    """Entry (i, j) of A is byte i * n + j of Philox stream 0, re-derived here block by block."""
    c = challenge(32)
    w0, w1, w2, w3 = struct.unpack_from("<4I", c.seed)
    a, b = challenge_matrices(c)
    for matrix, stream in ((a, 0), (b, 1)):
        data = b"".join(
            struct.pack("<4I", *philox_scalar((block, stream, w2, w3), (w0, w1)))
            for block in range(c.n * c.n // 16)
        )
        assert matrix.tolist() == np.frombuffer(data, dtype=np.int8).reshape(c.n, c.n).tolist()


def test_known_answer_vector_is_pinned():
    """A change to the seed, the generator, the encoding or the tree fails here: other implementations (the
    agent's GPU generator) must reproduce these exact bytes."""
    c = challenge(64)
    assert c.seed.hex() == "f1b65a4bd99f381fb1d9b8424311a55f004d2c91d6cd5854c793772d9546cc06"
    a, b = challenge_matrices(c)
    assert a[0, :8].tolist() == [105, 94, 25, 93, 75, -30, -36, 119]
    assert b[0, :8].tolist() == [-70, -47, -3, -73, -69, -93, -105, -2]
    assert keccak256(a.tobytes()).hex() == "8236123ab5f71ffbca63a756769a0c2917cff59070080d1eafdcb1d8c7947d55"
    assert keccak256(b.tobytes()).hex() == "429359db10977b1f7eedebc5cf506f8f1d8d380d1335a02d6f10e7aa159f662b"
    ans = answer(c)
    assert int(ans.product[0, 0]) == 46366
    assert ans.root.hex() == "11bd0ee68defca80e93885beb68df33aef773869dceb845eb2809279493b15ec"
    audit = draw_audit(c, ans.root, VERIFIER, rows=4, rounds=1)
    assert audit.rows == (59, 11, 57, 50)
    assert audit.vectors[:4, 0].tolist() == [15586, 14235, 10888, 49335]


def test_domain_tags_are_the_hashes_of_their_strings():
    assert keccak256(b"gpuspot.challenge.seed.v1") == CHALLENGE_SEED_TAG
    assert keccak256(b"gpuspot.challenge.audit.v1") == AUDIT_SEED_TAG
    assert keccak256(b"gpuspot.challenge.row.v1") == ROW_LEAF_TAG


def test_seed_is_the_abi_encoding_solidity_would_hash():
    expected = keccak256(
        eth_abi_encode(["bytes32", "bytes32", "uint64", "uint64"], [CHALLENGE_SEED_TAG, BLOCK, 7, 3])
    )
    assert challenge_seed(BLOCK, 7, 3) == expected
    assert challenge(lease_id=7, sequence=3).seed == expected


def test_seed_changes_with_block_lease_and_sequence():
    seeds = {
        challenge_seed(BLOCK, 1, 0),
        challenge_seed(keccak256(b"another block"), 1, 0),
        challenge_seed(BLOCK, 2, 0),
        challenge_seed(BLOCK, 1, 1),
    }
    assert len(seeds) == 4


@settings(max_examples=20, deadline=None)
@given(
    block=st.binary(min_size=32, max_size=32),
    lease_id=st.integers(0, 2**64 - 1),
    n=st.sampled_from([16, 48, 64, 128]),
)
def test_generation_is_deterministic_and_rows_match(block: bytes, lease_id: int, n: int):
    c = Challenge.derive(block, lease_id, 0, n, issued_at_ms=ISSUED)
    a, b = challenge_matrices(c)
    again = Challenge.derive(block, lease_id, 0, n, issued_at_ms=ISSUED + 1)  # time is not in the seed
    a2, b2 = challenge_matrices(again)
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    assert a.dtype == np.int8 and a.shape == (n, n) and a.flags.c_contiguous
    assert not np.array_equal(a, b)
    rows = [n - 1, 0, n // 2]
    assert np.array_equal(challenge_rows(c, rows), a[rows])


def test_entries_cover_the_whole_int8_range():
    a, b = challenge_matrices(challenge(256))
    assert a.min() == b.min() == -128 and a.max() == b.max() == 127


# --- exact products and bounds ----------------------------------------------------------------------------


def test_product_bound_fits_int32_for_the_largest_n():
    assert PRODUCT_BOUND == MAX_N * 128 * 128 == 2**28
    assert PRODUCT_BOUND <= 2**31 - 1


@pytest.mark.parametrize("n", [MAX_N + 16, 0, 8, 72 + 1, 100])
def test_sizes_outside_the_bound_are_refused(n: int):
    with pytest.raises(InvalidChallengeError, match="matrix size n"):
        challenge(n)


def test_numpy_reference_is_exact_at_the_extreme_entries():
    n = 1024
    extreme = np.full((n, n), -128, dtype=np.int8)
    assert (numpy_matmul(extreme, extreme) == n * 2**14).all()
    a, b = challenge_matrices(challenge(256))
    assert np.array_equal(numpy_matmul(a, b), exact(a, b))


def test_freivalds_arithmetic_cannot_overflow_at_the_bounds():
    """The int64 check's worst cases at n = MAX_N (B x, A (B x), a hostile C x), against Python ints."""
    x = np.full((MAX_N, 1), 2**16 - 1, dtype=np.int64)
    row = np.full((1, MAX_N), -128, dtype=np.int8)
    bx = _exact_product(row, x)
    assert int(bx[0, 0]) == MAX_N * -128 * (2**16 - 1)
    abx = _exact_product(row, np.full((MAX_N, 1), int(bx[0, 0]), dtype=np.int64))
    assert int(abx[0, 0]) == MAX_N * -128 * MAX_N * -128 * (2**16 - 1)
    hostile = np.full((1, MAX_N), -(2**31), dtype=np.int32)
    assert int(_exact_product(hostile, x)[0, 0]) == MAX_N * -(2**31) * (2**16 - 1)


# --- answers that pass ------------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(sequence=st.integers(0, 2**64 - 1), verifier=st.binary(min_size=32, max_size=32))
def test_correct_answers_pass_both_ways(sequence: int, verifier: bytes):
    c = challenge(64, sequence=sequence)
    ans = answer(c)
    a, b = challenge_matrices(c)
    assert np.array_equal(ans.product, exact(a, b))
    verdict = verify(c, ans.response(), answered_at_ms=ISSUED + 10, verifier_seed=verifier)
    assert verdict.passed, verdict
    audit = draw_audit(c, ans.root, verifier)
    opening = ans.open(audit.rows)
    verdict = verify_opening(c, ans.root, opening, committed_at_ms=ISSUED + 10, verifier_seed=verifier)
    assert verdict.passed and verdict.outcome is Outcome.PASSED, verdict


def test_wire_forms_round_trip():
    ans = answer(challenge(32))
    response = ans.response()
    data = response.to_bytes()
    assert len(data) == 57 + 4 * 32 * 32
    assert ProductResponse.from_bytes(data) == response
    assert ProductResponse.from_base64(response.to_base64()) == response
    opening = ans.open(draw_audit(ans.challenge, ans.root, VERIFIER, rows=5).rows)
    assert RowOpening.from_bytes(opening.to_bytes()) == opening


def test_any_integer_backend_is_accepted():
    c = challenge(32)
    wide = answer(c, lambda a, b: a.astype(np.int64) @ b.astype(np.int64))
    assert wide.root == answer(c).root and wide.product.dtype == np.int32


# --- answers that fail ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    row=st.integers(0, 63),
    col=st.integers(0, 63),
    delta=st.sampled_from([1, -1, 2**16, -(2**20)]),
    verifier=st.binary(min_size=32, max_size=32),
)
def test_a_single_wrong_entry_fails(row: int, col: int, delta: int, verifier: bytes):
    """Freivalds misses a wrong entry with probability <= 2^-32 at 2 rounds; derandomized: deterministic."""
    c = challenge(64)
    response = tampered_response(answer(c), row, col, delta)
    verdict = verify(c, response, answered_at_ms=ISSUED, verifier_seed=verifier)
    assert verdict.outcome is Outcome.WRONG_PRODUCT and f"row {row}" in verdict.reason


def test_a_wrong_entry_fails_even_with_one_round():
    c = challenge(128)
    response = tampered_response(answer(c), 127, 3, 1)
    verdict = verify(c, response, answered_at_ms=ISSUED, verifier_seed=VERIFIER, rounds=1)
    assert verdict.outcome is Outcome.WRONG_PRODUCT


def test_a_wrong_root_fails():
    ans = answer(challenge(32))
    good = ans.response()
    bad = ProductResponse(good.lease_id, good.sequence, good.n, keccak256(b"other"), good.product)
    verdict = verify(ans.challenge, bad, answered_at_ms=ISSUED, verifier_seed=VERIFIER)
    assert verdict.outcome is Outcome.WRONG_COMMITMENT


def test_a_product_that_does_not_match_its_root_fails():
    ans = answer(challenge(32))
    good = ans.response()
    product = bytearray(good.product)
    product[0] ^= 1
    bad = ProductResponse(good.lease_id, good.sequence, good.n, good.root, bytes(product))
    verdict = verify(ans.challenge, bad, answered_at_ms=ISSUED, verifier_seed=VERIFIER)
    assert verdict.outcome is Outcome.WRONG_COMMITMENT


def test_late_answers_fail_and_the_deadline_itself_is_on_time():
    c = challenge(32, deadline_ms=2_000)
    ans = answer(c)
    on_time = verify(c, ans.response(), answered_at_ms=c.due_at_ms, verifier_seed=VERIFIER)
    late = verify(c, ans.response(), answered_at_ms=c.due_at_ms + 1, verifier_seed=VERIFIER)
    assert on_time.passed and late.outcome is Outcome.LATE and "2001 ms" in late.reason
    opening = ans.open(draw_audit(c, ans.root, VERIFIER).rows)
    verdict = verify_opening(c, ans.root, opening, committed_at_ms=c.due_at_ms + 1, verifier_seed=VERIFIER)
    assert verdict.outcome is Outcome.LATE


def test_an_answer_before_the_issue_time_is_a_caller_error():
    c = challenge(32)
    with pytest.raises(InvalidChallengeError, match="precedes issued_at_ms"):
        verify(c, answer(c).response(), answered_at_ms=ISSUED - 1, verifier_seed=VERIFIER)


@pytest.mark.parametrize(
    "other", [dict(lease_id=2), dict(sequence=1), dict(n=48)], ids=["lease", "sequence", "size"]
)
def test_an_answer_to_another_challenge_is_malformed(other: dict[str, int]):
    c = challenge(32)
    response = answer(challenge(**{"n": 32, **other})).response()
    verdict = verify(c, response, answered_at_ms=ISSUED, verifier_seed=VERIFIER)
    assert verdict.outcome is Outcome.MALFORMED


def test_an_opened_row_that_does_not_match_the_root_fails():
    c = challenge(64)
    ans = answer(c)
    audit = draw_audit(c, ans.root, VERIFIER)
    wrong = ans.product.copy()
    wrong[audit.rows[3], 5] += 1
    opening = Answer(c, wrong, ans.tree).open(audit.rows)  # rows changed after the root was sent
    verdict = verify_opening(c, ans.root, opening, committed_at_ms=ISSUED, verifier_seed=VERIFIER)
    assert verdict.outcome is Outcome.WRONG_COMMITMENT and f"row {audit.rows[3]}" in verdict.reason


def test_an_opening_vouches_only_for_the_rows_it_opens():
    """Sampling's limit, stated as a test: a prover that committed to a product with one wrong row is caught
    when the audit draws that row, and only then."""
    c = challenge(64)
    right = answer(c).product
    caught = 0
    for wrong_row in range(c.n):
        wrong = right.copy()
        wrong[wrong_row, 0] += 1
        cheat = answer(c, lambda a, b, wrong=wrong: wrong)
        audit = draw_audit(c, cheat.root, VERIFIER, rows=8)
        opening = cheat.open(audit.rows)
        verdict = verify_opening(
            c, cheat.root, opening, committed_at_ms=ISSUED, verifier_seed=VERIFIER, rows=8
        )
        drawn = wrong_row in audit.rows
        caught += drawn
        assert verdict.outcome is (Outcome.WRONG_PRODUCT if drawn else Outcome.PASSED)
    assert 0 < caught < c.n


def test_an_opening_of_other_rows_is_malformed():
    c = challenge(64)
    ans = answer(c)
    audit = draw_audit(c, ans.root, VERIFIER)
    others = [r for r in range(c.n) if r not in audit.rows][: len(audit.rows)]
    verdict = verify_opening(c, ans.root, ans.open(others), committed_at_ms=ISSUED, verifier_seed=VERIFIER)
    assert verdict.outcome is Outcome.MALFORMED


def test_a_tampered_proof_fails():
    c = challenge(64)
    ans = answer(c)
    opening = ans.open(draw_audit(c, ans.root, VERIFIER).rows)
    first = opening.rows[0]
    forged = OpenedRow(first.index, first.values, (keccak256(b"x"), *first.proof[1:]))
    bad = RowOpening(opening.lease_id, opening.sequence, opening.n, (forged, *opening.rows[1:]))
    verdict = verify_opening(c, ans.root, bad, committed_at_ms=ISSUED, verifier_seed=VERIFIER)
    assert verdict.outcome is Outcome.WRONG_COMMITMENT


# --- malformed input --------------------------------------------------------------------------------------


def test_malformed_product_responses_raise():
    data = answer(challenge(32)).response().to_bytes()
    for bad in (
        data[:-1],  # truncated product
        data + b"\x00",  # trailing byte
        data[:20],  # inside the header
        b"XXXX" + data[4:],  # wrong magic
        data[:4] + b"\x02" + data[5:],  # unknown version
        data[:21] + struct.pack(">I", 40) + data[25:],  # n not a multiple of 16
    ):
        with pytest.raises(MalformedAnswerError):
            ProductResponse.from_bytes(bad)
    with pytest.raises(MalformedAnswerError, match="base64"):
        ProductResponse.from_base64("not base64!")
    with pytest.raises(MalformedAnswerError, match="at most"):
        ProductResponse.from_bytes(bytes(ProductResponse.max_size() + 1))
    assert issubclass(MalformedAnswerError, ProtocolError) and issubclass(MalformedAnswerError, ValueError)


def test_whole_products_beyond_the_size_bound_are_refused():
    n = MAX_PRODUCT_RESPONSE_N * 2
    with pytest.raises(MalformedAnswerError, match="row opening"):
        ProductResponse(1, 0, n, bytes(32), bytes(4 * n * n))


def test_malformed_openings_raise():
    ans = answer(challenge(32))
    data = ans.open([1, 2]).to_bytes()
    for bad in (data[:-1], data + b"\x00", data[:30], b"XXXX" + data[4:]):
        with pytest.raises(MalformedAnswerError):
            RowOpening.from_bytes(bad)
    with pytest.raises(MalformedAnswerError, match="4n"):
        RowOpening(1, 0, 32, (OpenedRow(0, b"\x00" * 3, ()),))
    with pytest.raises(MalformedAnswerError, match="not a row"):
        RowOpening(1, 0, 32, (OpenedRow(32, bytes(128), ()),))
    with pytest.raises(MalformedAnswerError, match="1 to"):
        RowOpening(1, 0, 32, ())


@pytest.mark.parametrize(
    "backend",
    [
        lambda a, b: a.astype(np.float64) @ b.astype(np.float64),  # floats decide nothing
        lambda a, b: (a.astype(np.int32) @ b.astype(np.int32))[:-1],  # wrong shape
        lambda a, b: np.full(a.shape, PRODUCT_BOUND, dtype=np.int64),  # beyond n * 2^14
        lambda a, b: "not an array",
    ],
    ids=["float", "shape", "bound", "type"],
)
def test_a_broken_backend_is_refused(backend):
    with pytest.raises(MatmulBackendError):
        answer(challenge(32), backend)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(block_hash=b"\x00" * 31), "block_hash"),
        (dict(lease_id=2**64), "lease_id"),
        (dict(sequence=True), "sequence"),
        (dict(deadline_ms=0), "deadline_ms"),
        (dict(issued_at_ms=-1), "issued_at_ms"),
    ],
)
def test_bad_challenge_fields_are_refused(kwargs: dict[str, object], match: str):
    fields: dict[str, object] = dict(
        block_hash=BLOCK, lease_id=1, sequence=0, n=32, issued_at_ms=ISSUED, deadline_ms=1
    )
    with pytest.raises(InvalidChallengeError, match=match):
        Challenge(**{**fields, **kwargs})


def test_audit_rows_are_distinct_and_depend_on_root_and_verifier():
    c = challenge(64)
    audit = draw_audit(c, bytes(32), VERIFIER, rows=64)
    assert sorted(audit.rows) == list(range(64))
    vectors = draw_audit(c, bytes(32), VERIFIER, rows=0, rounds=3).vectors
    assert vectors.shape == (64, 3) and vectors.min() >= 0 and vectors.max() < 2**16
    assert draw_audit(c, bytes(32), VERIFIER).rows != draw_audit(c, b"\x01" * 32, VERIFIER).rows
    assert draw_audit(c, bytes(32), VERIFIER).seed != draw_audit(c, bytes(32), bytes(32)).seed
    with pytest.raises(InvalidChallengeError, match="rounds"):
        draw_audit(c, bytes(32), VERIFIER, rounds=0)
    with pytest.raises(InvalidChallengeError, match="rows"):
        draw_audit(c, bytes(32), VERIFIER, rows=65)


def test_base64_is_standard_base64_of_the_wire_form():
    response = answer(challenge(16)).response()
    assert base64.b64decode(response.to_base64()) == response.to_bytes()
