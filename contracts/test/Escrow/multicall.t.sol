// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {BidState} from "../../src/libraries/BidStates.sol";
import {Base} from "../utils/Base.t.sol";
import {vm} from "../utils/Vm.sol";

contract EscrowMulticallTest is Base {
    function test_multicall_locksTwoBatchesInOneTransaction() public {
        IEscrow.SignedLease[] memory first = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory firstTree = _commit(1, first);
        IEscrow.SignedLease[] memory second = new IEscrow.SignedLease[](2);
        second[0] = _lease(BUYER_KEY, 1);
        second[1] = _lease(BUYER2_KEY, 0);
        bytes32[] memory secondTree = _commit(2, second);

        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(IEscrow.lockLeases, (1, first, _proofOfAll(firstTree, 1)));
        calls[1] = abi.encodeCall(IEscrow.lockLeases, (2, second, _proofOfAll(secondTree, 2)));
        escrow.multicall(calls);

        vm.assertEq(_state(buyer, 0), uint256(BidState.Locked), "batch 1");
        vm.assertEq(_state(buyer, 1), uint256(BidState.Locked), "batch 2, buyer");
        vm.assertEq(_state(buyer2, 0), uint256(BidState.Locked), "batch 2, buyer2");
        vm.assertEq(_reserved(buyer), 2 * _reservation(first[0].bid), "buyer reserved twice");
    }

    function test_multicall_revertsEntirelyWhenOneBatchFails() public {
        IEscrow.SignedLease[] memory first = _one(_lease(BUYER_KEY, 0));
        bytes32[] memory firstTree = _commit(1, first);
        IEscrow.SignedLease[] memory second = _one(_lease(BUYER_KEY, 1));
        bytes32[] memory secondTree = _commit(2, second);
        second[0].pricePerGpuHour = PRICE + 1; // not what batch 2 committed

        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(IEscrow.lockLeases, (1, first, _proofOfAll(firstTree, 1)));
        calls[1] = abi.encodeCall(IEscrow.lockLeases, (2, second, _proofOfAll(secondTree, 1)));
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementInvalidProof.selector, uint64(2)));
        escrow.multicall(calls);
        vm.assertEq(_state(buyer, 0), uint256(BidState.Open), "first lock rolled back");
    }
}
