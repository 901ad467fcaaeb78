// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Base} from "../utils/Base.t.sol";
import {vm, bound} from "../utils/Vm.sol";

contract EscrowPostRootTest is Base {
    bytes32 internal constant ROOT = keccak256("root");

    function test_postRoot_recordsRootAndPostTime() public {
        vm.expectEmit(true, true, true, true, address(escrow));
        emit IEscrow.RootPosted(1, ROOT, uint64(block.timestamp));
        vm.prank(operator);
        escrow.postRoot(1, ROOT);
        IEscrow.BatchRoot memory posted = escrow.batchRoot(1);
        vm.assertEq(posted.root, ROOT, "root");
        vm.assertEq(posted.postedAt, block.timestamp, "postedAt");
        vm.assertEq(escrow.lastBatchId(), 1, "lastBatchId");
    }

    function test_postRoot_acceptsGapsInBatchIds() public {
        vm.startPrank(operator);
        escrow.postRoot(1, ROOT);
        escrow.postRoot(9, ROOT);
        vm.stopPrank();
        vm.assertEq(escrow.lastBatchId(), 9, "lastBatchId");
        vm.assertEq(escrow.batchRoot(5).root, bytes32(0), "skipped id stays empty");
    }

    function test_postRoot_revertsWhenCallerIsNotTheOperator() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementUnauthorizedOperator.selector, stranger));
        vm.prank(stranger);
        escrow.postRoot(1, ROOT);
    }

    function test_postRoot_revertsWhenRootIsEmpty() public {
        vm.expectRevert(abi.encodeWithSelector(IEscrow.SettlementEmptyRoot.selector, uint64(1)));
        vm.prank(operator);
        escrow.postRoot(1, bytes32(0));
    }

    function test_postRoot_revertsWhenBatchIdIsZero() public {
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.SettlementBatchIdNotIncreasing.selector, uint64(0), uint64(0))
        );
        vm.prank(operator);
        escrow.postRoot(0, ROOT);
    }

    function test_postRoot_revertsWhenBatchIdRepeats() public {
        vm.startPrank(operator);
        escrow.postRoot(3, ROOT);
        vm.expectRevert(
            abi.encodeWithSelector(IEscrow.SettlementBatchIdNotIncreasing.selector, uint64(3), uint64(3))
        );
        escrow.postRoot(3, keccak256("other"));
        vm.stopPrank();
        vm.assertEq(escrow.batchRoot(3).root, ROOT, "first root kept");
    }

    function testFuzz_postRoot_acceptsOnlyStrictlyIncreasingIds(uint64 first, uint64 second) public {
        first = uint64(bound(first, 1, type(uint64).max));
        vm.startPrank(operator);
        escrow.postRoot(first, ROOT);
        if (second <= first) {
            vm.expectRevert(
                abi.encodeWithSelector(IEscrow.SettlementBatchIdNotIncreasing.selector, second, first)
            );
        }
        escrow.postRoot(second, ROOT);
        vm.stopPrank();
        vm.assertEq(escrow.lastBatchId(), second > first ? second : first, "lastBatchId");
    }
}
