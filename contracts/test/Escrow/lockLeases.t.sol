// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Bid} from "../../src/libraries/Orders.sol";
import {BidState} from "../../src/libraries/BidStates.sol";
import {Base} from "../utils/Base.t.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowLockLeasesTest is Base {
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    function _expectRevertLock(bytes memory err, IEscrow.SignedLease memory lease) internal {
        IEscrow.SignedLease[] memory leases = _one(lease);
        bytes32[] memory tree = _commit(1, leases);
        vm.expectRevert(err);
        _lock(1, leases, tree);
    }

    /// @notice The digest of `bid` under the gpuspot domain on `chainId` at `verifyingContract`.
    function _digestOn(Bid memory bid, uint256 chainId, address verifyingContract) internal view returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("gpuspot"), keccak256("1"), chainId, verifyingContract)
        );
        bytes32 structHash = keccak256(abi.encode(keccak256(bytes(_bidType())), bid));
        return keccak256(abi.encodePacked(hex"1901", domain, structHash));
    }

    function _bidType() internal pure returns (string memory) {
        return
        "Bid(address buyer,bytes32 product,uint16 gpus,uint32 duration,uint128 maxPricePerGpuHour,bytes32 jobSpecHash,uint256 nonce,uint64 expiry)";
    }

    // --- success ------------------------------------------------------------------------------------------------

    function test_lockLeases_reservesTheCapCostAndConsumesTheNonce() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory tree = _commit(1, leases);
        uint256 reservation = _reservation(leases[0].bid);
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.LeaseLocked(
            leases[0].leaseId, buyer, provider, 1, 0, escrow.bidDigest(leases[0].bid), reservation
        );
        vm.prank(stranger); // anyone may lock
        _lock(1, leases, tree);
        vm.assertEq(reservation, uint256(GPUS) * DURATION * MAX_PRICE / 3600, "reservation at the cap");
        vm.assertEq(_reserved(buyer), reservation, "reserved");
        vm.assertEq(_available(buyer), FUNDING - reservation, "available");
        vm.assertEq(_state(buyer, 0), uint256(BidState.Locked), "locked");
        vm.assertEq(token.balanceOf(address(escrow)), 2 * FUNDING, "no token moved");
    }

    function test_lockLeases_locksASubsetOfABatchInLeafOrder() public {
        IEscrow.SignedLease[] memory all = new IEscrow.SignedLease[](5);
        for (uint256 i; i < 5; ++i) {
            all[i] = _lease(i % 2 == 0 ? BUYER_KEY : BUYER2_KEY, i);
        }
        bytes32[] memory tree = _commit(1, all);
        uint256[] memory picked = new uint256[](2);
        picked[0] = 3;
        picked[1] = 1;
        (, IEscrow.MultiProof memory proof) = MerkleBuilder.multiProof(tree, picked);
        IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](2);
        leases[0] = all[1];
        leases[1] = all[3];
        escrow.lockLeases(1, leases, proof);
        vm.assertEq(_state(buyer2, 1), uint256(BidState.Locked), "leaf 1");
        vm.assertEq(_state(buyer2, 3), uint256(BidState.Locked), "leaf 3");
        vm.assertEq(_state(buyer, 0), uint256(BidState.Open), "leaf 0 untouched");
        vm.assertEq(_reserved(buyer2), 2 * _reservation(all[1].bid), "two reservations");
    }

    function test_lockLeases_acceptsTheLastSecondOfTheLockWindow() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory tree = _commit(1, leases);
        vm.warp(block.timestamp + LOCK_WINDOW);
        _lock(1, leases, tree);
        vm.assertEq(_state(buyer, 0), uint256(BidState.Locked), "locked");
    }

    function test_lockLeases_acceptsABidExpiringAtThePostTime() public {
        Bid memory bid = _bid(buyer, 0);
        bid.expiry = uint64(block.timestamp);
        IEscrow.SignedLease[] memory leases = _one(_signedLease(BUYER_KEY, bid, provider, PRICE));
        bytes32[] memory tree = _commit(1, leases);
        vm.warp(block.timestamp + 1); // expiry is judged at the post, not at the lock
        _lock(1, leases, tree);
        vm.assertEq(_state(buyer, 0), uint256(BidState.Locked), "locked");
    }

    function testFuzz_lockLeases_reservesExactlyTheCapCost(uint16 gpus, uint32 duration, uint128 cap, uint128 price)
        public
    {
        gpus = uint16(bound(gpus, 1, type(uint16).max));
        duration = uint32(bound(duration, 1, 30 days));
        cap = uint128(bound(cap, 0, 1e12));
        price = uint128(bound(price, 0, cap));
        Bid memory bid = _bid(buyer, 0);
        (bid.gpus, bid.duration, bid.maxPricePerGpuHour) = (gpus, duration, cap);
        uint256 reservation = uint256(gpus) * duration * cap / 3600;
        vm.assume(reservation <= FUNDING);
        IEscrow.SignedLease[] memory leases = _one(_signedLease(BUYER_KEY, bid, provider, price));
        bytes32[] memory tree = _commit(1, leases);
        _lock(1, leases, tree);
        vm.assertEq(_reserved(buyer), reservation, "reserved");
        vm.assertEq(_available(buyer) + _reserved(buyer), FUNDING, "conserved");
    }

    // --- bids ---------------------------------------------------------------------------------------------------

    function test_lockLeases_revertsWhenSignerIsNotTheBuyer() public {
        Bid memory bid = _bid(buyer, 0);
        IEscrow.SignedLease memory lease = _signedLease(STRANGER_KEY, bid, provider, PRICE);
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidSignatureInvalid.selector, buyer, stranger), lease);
    }

    function test_lockLeases_revertsWhenSignedForAnotherChain() public {
        Bid memory bid = _bid(buyer, 0);
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, bid, provider, PRICE);
        bytes32 foreign = _digestOn(bid, 1, address(escrow));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(BUYER_KEY, foreign);
        (lease.r, lease.vs) = (r, _compact(v, s));
        address recovered = ecrecover(escrow.bidDigest(bid), v, r, s);
        vm.assertTrue(recovered != buyer, "recovers someone else here");
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidSignatureInvalid.selector, buyer, recovered), lease);
    }

    function test_lockLeases_revertsWhenSignedForAnotherContract() public {
        Bid memory bid = _bid(buyer, 0);
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, bid, provider, PRICE);
        bytes32 foreign = _digestOn(bid, block.chainid, address(registry));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(BUYER_KEY, foreign);
        (lease.r, lease.vs) = (r, _compact(v, s));
        address recovered = ecrecover(escrow.bidDigest(bid), v, r, s);
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidSignatureInvalid.selector, buyer, recovered), lease);
    }

    function test_lockLeases_revertsWhenTheBidWasAlteredAfterSigning() public {
        IEscrow.SignedLease memory lease = _lease(BUYER_KEY, 0);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(BUYER_KEY, escrow.bidDigest(lease.bid));
        lease.bid.maxPricePerGpuHour = MAX_PRICE * 2;
        address recovered = ecrecover(escrow.bidDigest(lease.bid), v, r, s);
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidSignatureInvalid.selector, buyer, recovered), lease);
    }

    /// @dev A high-s value is refused even where the bare precompile would recover something from it.
    function test_lockLeases_revertsOnAHighSSignature() public {
        IEscrow.SignedLease memory lease = _lease(BUYER_KEY, 0);
        uint256 highS = SECP256K1_N / 2 + 1; // the smallest s above the half order, below 2^255
        lease.vs = bytes32(highS);
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidSignatureInvalid.selector, buyer, address(0)), lease);
    }

    /// @dev The malleable twin of a valid signature (n - s, flipped v) recovers the buyer with the bare precompile,
    /// but every low-s signature's twin has its top bit set, so EIP-2098 cannot carry it: in compact form it reads as
    /// another signature, which recovers someone else.
    function test_lockLeases_revertsOnTheMalleableTwinOfAValidSignature() public {
        IEscrow.SignedLease memory lease = _lease(BUYER_KEY, 0);
        bytes32 digest = escrow.bidDigest(lease.bid);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(BUYER_KEY, digest);
        vm.assertLe(uint256(s), SECP256K1_N / 2, "forge signs low-s");
        uint256 twinS = SECP256K1_N - uint256(s);
        uint8 twinV = v == 27 ? 28 : 27;
        vm.assertEq(ecrecover(digest, twinV, r, bytes32(twinS)), buyer, "the twin is a valid ecrecover");
        vm.assertGe(twinS, 1 << 255, "the twin's s needs the top bit");

        lease.vs = bytes32(twinS | (uint256(twinV - 27) << 255));
        address recovered = ecrecover(digest, 28, r, bytes32(twinS - (1 << 255)));
        vm.assertTrue(recovered != buyer, "reads as another signature");
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidSignatureInvalid.selector, buyer, recovered), lease);
    }

    function test_lockLeases_revertsWhenTheBidExpiredBeforeThePost() public {
        Bid memory bid = _bid(buyer, 4);
        bid.expiry = uint64(block.timestamp - 1);
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, bid, provider, PRICE);
        _expectRevertLock(
            abi.encodeWithSelector(
                IEscrow.BidExpired.selector, buyer, 4, uint64(block.timestamp - 1), uint64(block.timestamp)
            ),
            lease
        );
    }

    function test_lockLeases_revertsWhenTheBidIsForZeroGpus() public {
        Bid memory bid = _bid(buyer, 4);
        bid.gpus = 0;
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, bid, provider, PRICE);
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidEmpty.selector, buyer, 4), lease);
    }

    function test_lockLeases_revertsWhenTheBidIsForZeroSeconds() public {
        Bid memory bid = _bid(buyer, 4);
        bid.duration = 0;
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, bid, provider, PRICE);
        _expectRevertLock(abi.encodeWithSelector(IEscrow.BidEmpty.selector, buyer, 4), lease);
    }

    function test_lockLeases_revertsWhenThePriceIsAboveTheCap() public {
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, _bid(buyer, 0), provider, MAX_PRICE + 1);
        _expectRevertLock(
            abi.encodeWithSelector(IEscrow.LeasePriceAboveCap.selector, lease.leaseId, MAX_PRICE + 1, MAX_PRICE),
            lease
        );
    }

    function test_lockLeases_revertsWhenReplayed() public {
        (IEscrow.SignedLease[] memory leases, bytes32[] memory tree) = _commitAndLock(1, 0);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 0, BidState.Locked));
        _lock(1, leases, tree);
        vm.assertEq(_reserved(buyer), _reservation(leases[0].bid), "reserved once");
    }

    function test_lockLeases_revertsWhenTheSameBidIsCommittedAgainInALaterBatch() public {
        (IEscrow.SignedLease[] memory leases,) = _commitAndLock(1, 0);
        leases[0].leaseId = 999; // a second lease for the same signed bid
        bytes32[] memory tree = _commit(2, leases);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 0, BidState.Locked));
        _lock(2, leases, tree);
    }

    function test_lockLeases_revertsWhenTheSameLeaseAppearsTwiceInOneCall() public {
        IEscrow.SignedLease memory lease = _lease(BUYER_KEY, 0);
        IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](2);
        leases[0] = lease;
        leases[1] = lease;
        bytes32[] memory tree = _commit(1, leases);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.BidNotInState.selector, buyer, 0, BidState.Locked));
        _lock(1, leases, tree);
    }

    // --- batch, window, provider, balance -------------------------------------------------------------------------

    function test_lockLeases_revertsWhenNoLeaseIsGiven() public {
        IEscrow.SignedLease[] memory none;
        IEscrow.MultiProof memory proof;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.EscrowEmptyOrMismatchedBatch.selector, 0, 0));
        escrow.lockLeases(1, none, proof);
    }

    function test_lockLeases_revertsWhenTheBatchIsUnknown() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 0));
        IEscrow.MultiProof memory proof;
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementUnknownBatch.selector, uint64(7)));
        escrow.lockLeases(7, leases, proof);
    }

    function test_lockLeases_revertsAfterTheLockWindow() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory tree = _commit(1, leases);
        uint64 closesAt = uint64(block.timestamp) + LOCK_WINDOW;
        vm.warp(closesAt + 1);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.LeaseLockWindowClosed.selector, uint64(1), closesAt));
        _lock(1, leases, tree);
    }

    function test_lockLeases_revertsWhenTheProviderIsNotRegistered() public {
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, _bid(buyer, 0), provider2, PRICE);
        _expectRevertLock(
            abi.encodeWithSelector(IEscrow.LeaseProviderInactive.selector, lease.leaseId, provider2), lease
        );
    }

    function test_lockLeases_revertsWhenTheProviderIsExiting() public {
        vm.prank(provider);
        registry.requestExit();
        IEscrow.SignedLease memory lease = _lease(BUYER_KEY, 0);
        _expectRevertLock(
            abi.encodeWithSelector(IEscrow.LeaseProviderInactive.selector, lease.leaseId, provider), lease
        );
    }

    function test_lockLeases_revertsWhenTheProviderWasSlashedBelowTheMinimum() public {
        vm.prank(arbiter);
        registry.slash(provider, 1, arbiter, keccak256("failed challenge"));
        IEscrow.SignedLease memory lease = _lease(BUYER_KEY, 0);
        _expectRevertLock(
            abi.encodeWithSelector(IEscrow.LeaseProviderInactive.selector, lease.leaseId, provider), lease
        );
    }

    function test_lockLeases_revertsWhenTheBuyerCannotCoverTheReservation() public {
        Bid memory bid = _bid(buyer, 0);
        bid.gpus = 1000;
        bid.duration = 30 days;
        uint256 needed = _reservation(bid);
        IEscrow.SignedLease memory lease = _signedLease(BUYER_KEY, bid, provider, PRICE);
        _expectRevertLock(
            abi.encodeWithSelector(IEscrow.EscrowInsufficientBalance.selector, buyer, needed, FUNDING), lease
        );
    }

    // --- proofs ---------------------------------------------------------------------------------------------------

    function test_lockLeases_revertsWhenALeafWasTamperedWith() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory tree = _commit(1, leases);
        leases[0].pricePerGpuHour = PRICE - 1; // still under the cap, but not what the root committed
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(1)));
        _lock(1, leases, tree);
    }

    function test_lockLeases_revertsWhenTheLeaseIsInAnotherBatch() public {
        IEscrow.SignedLease[] memory leases = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory tree = _commit(1, leases);
        vm.prank(operator);
        escrow.postRoot(2, keccak256("another root"));
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(2)));
        _lock(2, leases, tree);
    }

    function test_lockLeases_revertsWhenLeasesAreOutOfLeafOrder() public {
        IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](3);
        for (uint256 i; i < 3; ++i) {
            leases[i] = _lease(BUYER_KEY, i);
        }
        bytes32[] memory tree = _commit(1, leases);
        IEscrow.MultiProof memory proof = _proofOfAll(tree, 3);
        (leases[0], leases[2]) = (leases[2], leases[0]);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(1)));
        escrow.lockLeases(1, leases, proof);
    }

    function test_lockLeases_revertsWhenTheProofShapeIsWrong() public {
        IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](2);
        leases[0] = _lease(BUYER_KEY, 0);
        leases[1] = _lease(BUYER_KEY, 1);
        bytes32[] memory tree = _commit(1, _withExtra(leases));
        IEscrow.MultiProof memory proof = _proofOfAll(tree, 2);
        proof.flags = new bool[](proof.flags.length + 1);
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(1)));
        escrow.lockLeases(1, leases, proof);
    }

    function test_lockLeases_revertsWhenAProofFlagIsFlipped() public {
        IEscrow.SignedLease[] memory leases = new IEscrow.SignedLease[](2);
        leases[0] = _lease(BUYER_KEY, 0);
        leases[1] = _lease(BUYER_KEY, 2);
        bytes32[] memory tree = _commit(1, _withExtra(leases));
        IEscrow.MultiProof memory proof = _proofOfAll(tree, 2);
        proof.flags[0] = !proof.flags[0];
        vm.expectRevert();
        escrow.lockLeases(1, leases, proof);
        vm.assertEq(_state(buyer, 0), uint256(BidState.Open), "nothing locked");
    }

    /// @dev A tree with a third, unrelated leaf after `leases`, so a multiproof of the first two needs siblings.
    function _withExtra(IEscrow.SignedLease[] memory leases)
        internal
        returns (IEscrow.SignedLease[] memory all)
    {
        all = new IEscrow.SignedLease[](leases.length + 1);
        for (uint256 i; i < leases.length; ++i) {
            all[i] = leases[i];
        }
        all[leases.length] = _lease(BUYER2_KEY, 77);
    }
}
