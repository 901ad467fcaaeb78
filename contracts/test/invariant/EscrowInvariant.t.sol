// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {BidState} from "../../src/libraries/BidStates.sol";
import {Base} from "../utils/Base.t.sol";
import {vm} from "../utils/Vm.sol";
import {EscrowHandler} from "./handlers/EscrowHandler.sol";

struct FuzzSelector {
    address addr;
    bytes4[] selectors;
}

/// @notice Solvency and once-only redemption of the escrow and the registry under random valid activity.
contract EscrowInvariantTest is Base {
    EscrowHandler internal handler;

    function setUp() public override {
        super.setUp();
        uint256[4] memory keys = [BUYER_KEY, BUYER2_KEY, uint256(0xB0B3), uint256(0xB0B4)];
        address[3] memory sellers = [provider, provider2, vm.addr(0x9A0B1DE3)];
        handler = new EscrowHandler(escrow, registry, keys, sellers);
        vm.label(address(handler), "handler");
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = EscrowHandler.deposit.selector;
        selectors[1] = EscrowHandler.requestWithdrawal.selector;
        selectors[2] = EscrowHandler.cancelWithdrawal.selector;
        selectors[3] = EscrowHandler.withdraw.selector;
        selectors[4] = EscrowHandler.warp.selector;
        selectors[5] = EscrowHandler.postBatch.selector;
        selectors[6] = EscrowHandler.lockLeases.selector;
        selectors[7] = EscrowHandler.settleLeases.selector;
        selectors[8] = EscrowHandler.reclaimLeases.selector;
        selectors[9] = EscrowHandler.invalidateNonces.selector;
        selectors[10] = EscrowHandler.registryAction.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), selectors);
    }

    // --- accounts the campaign touches --------------------------------------------------------------------------

    function _accounts() internal view returns (address[] memory all) {
        uint256 nb = handler.BUYERS();
        uint256 np = handler.PROVIDERS();
        all = new address[](nb + np);
        for (uint256 i; i < nb; ++i) {
            all[i] = handler.buyers(i);
        }
        for (uint256 i; i < np; ++i) {
            all[nb + i] = handler.providers(i);
        }
    }

    // --- invariants -----------------------------------------------------------------------------------------------

    /// @notice The escrow holds exactly the ledger: every token is someone's available or reserved balance, and
    /// tokens only came in by deposit and left by withdrawal.
    function invariant_escrowBalanceEqualsTheLedger() public view {
        address[] memory accounts = _accounts();
        uint256 sum;
        for (uint256 i; i < accounts.length; ++i) {
            IEscrow.Account memory a = escrow.accountOf(accounts[i]);
            sum += uint256(a.available) + a.reserved;
        }
        // The base setup funded buyer and buyer2 outside the handler.
        uint256 balance = token.balanceOf(address(escrow));
        vm.assertEq(balance, sum, "escrow balance == sum of ledger entries");
        vm.assertEq(
            balance, 2 * FUNDING + handler.ghostDeposited() - handler.ghostWithdrawn(), "deposits less withdrawals"
        );
    }

    /// @notice The registry holds exactly the stakes.
    function invariant_registryBalanceEqualsTheStakes() public view {
        uint256 sum;
        for (uint256 i; i < handler.PROVIDERS(); ++i) {
            sum += registry.providerOf(handler.providers(i)).stake;
        }
        uint256 balance = token.balanceOf(address(registry));
        vm.assertEq(balance, registry.totalStaked(), "balance == totalStaked");
        vm.assertEq(balance, sum, "balance == sum of stakes");
        vm.assertEq(balance, MIN_STAKE + handler.ghostStakeIn() - handler.ghostStakeOut(), "stakes in less out");
    }

    /// @notice No lease pays more than it reserved, nor more than its price for gpus x the time since its root.
    function invariant_leasesPayAtMostTheReservationAndTheElapsedTime() public view {
        uint256 clock = handler.clock();
        for (uint256 i; i < handler.recCount(); ++i) {
            EscrowHandler.LeaseRec memory r = handler.rec(i);
            vm.assertLe(r.paid, r.reservation, "paid <= reservation");
            uint256 elapsed = clock - r.startedAt;
            uint256 seconds_ = elapsed < r.lease.bid.duration ? elapsed : r.lease.bid.duration;
            uint256 maxCost = uint256(r.lease.bid.gpus) * seconds_ * r.lease.pricePerGpuHour / 3600;
            vm.assertLe(r.paid, maxCost, "paid <= price x gpus x elapsed");
            if (r.locks == 1 && r.closes == 0) {
                IEscrow.Payment memory p = escrow.paymentOf(escrow.bidDigest(r.lease.bid));
                vm.assertEq(p.amount, r.paid, "payment record == paid so far");
            }
        }
    }

    /// @notice Each bid's nonce locks at most once and each lease closes at most once, and only after locking;
    /// the on-chain state agrees, and an open lease stays bound to the leaf it was locked with.
    function invariant_leasesLockAndCloseAtMostOnce() public view {
        for (uint256 i; i < handler.recCount(); ++i) {
            EscrowHandler.LeaseRec memory r = handler.rec(i);
            vm.assertLe(r.locks, 1, "locked at most once");
            vm.assertLe(r.closes, r.locks, "closed at most once, and only if locked");
            BidState state = escrow.bidState(r.lease.bid.buyer, r.lease.bid.nonce);
            if (r.closes == 1) {
                vm.assertEq(uint256(state), uint256(BidState.Closed), "closed on chain");
                vm.assertEq(escrow.lockedLeaf(escrow.bidDigest(r.lease.bid)), bytes32(0), "no leaf kept after close");
            } else if (r.locks == 1) {
                vm.assertTrue(state == BidState.Locked || state == BidState.PartiallySettled, "open lease on chain");
                vm.assertEq(
                    escrow.lockedLeaf(escrow.bidDigest(r.lease.bid)),
                    escrow.leaseLeaf(0, r.batchId, r.lease, 0),
                    "an open lease is bound to the leaf it was locked with"
                );
            }
        }
    }

    /// @notice Every buyer's reserve is exactly what its open leases still hold: reservation less paid.
    function invariant_reservedEqualsOpenLeaseBalances() public view {
        uint256 nb = handler.BUYERS();
        uint256[] memory expected = new uint256[](nb);
        for (uint256 i; i < handler.recCount(); ++i) {
            EscrowHandler.LeaseRec memory r = handler.rec(i);
            if (r.locks != 1 || r.closes != 0) continue;
            for (uint256 b; b < nb; ++b) {
                if (handler.buyers(b) == r.lease.bid.buyer) expected[b] += r.reservation - r.paid;
            }
        }
        uint256 total;
        uint256 expectedTotal;
        for (uint256 b; b < nb; ++b) {
            uint256 reserved = escrow.accountOf(handler.buyers(b)).reserved;
            vm.assertEq(reserved, expected[b], "buyer reserve == its open leases");
            total += reserved;
            expectedTotal += expected[b];
        }
        vm.assertEq(total, expectedTotal, "sum of reserves == sum over open leases");
    }

    /// @notice The campaign is not vacuous. Every sequence ends having locked, settled (finally too) and
    /// reclaimed leases: where the fuzzer's sequence did not get there on its own, the handler's own actions drive
    /// it there now (they reach each step from any state, or the handler reverts), and then every invariant is
    /// checked again, so the end of any reachable history can still close its leases and stay solvent. Called
    /// after each sequence; forge's per-selector call table shows how often each step was reached on its own.
    function afterInvariant() public {
        if (handler.lockedLeases() == 0) handler.lockLeases(0);
        if (handler.settlements() == 0) handler.settleLeases(0);
        // Odd seeds settle final usage leaves only; the first usage leaf a settle posts is final.
        for (uint256 seed = 1; handler.finalSettlements() == 0 && seed < 64; seed += 2) {
            handler.settleLeases(seed);
        }
        if (handler.reclaims() == 0) handler.reclaimLeases(0);
        vm.assertGt(handler.lockedLeases(), 0, "no lease was locked");
        vm.assertGt(handler.settlements(), 0, "no settlement");
        vm.assertGt(handler.finalSettlements(), 0, "no final settlement");
        vm.assertGt(handler.reclaims(), 0, "no reclaim");
        invariant_escrowBalanceEqualsTheLedger();
        invariant_registryBalanceEqualsTheStakes();
        invariant_leasesPayAtMostTheReservationAndTheElapsedTime();
        invariant_leasesLockAndCloseAtMostOnce();
        invariant_reservedEqualsOpenLeaseBalances();
    }
}
