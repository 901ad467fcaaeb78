// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IEscrow} from "../../src/interfaces/IEscrow.sol";
import {Bid, OrderHashes} from "../../src/libraries/Orders.sol";
import {Base} from "../utils/Base.t.sol";
import {vm} from "../utils/Vm.sol";

/// @notice The EIP-712 type hashes and digests the matcher, the agent and the SDK must reproduce.
contract EscrowBidDigestTest is Base {
    string internal constant BID_TYPE =
        "Bid(address buyer,bytes32 product,uint16 gpus,uint32 duration,uint128 maxPricePerGpuHour,bytes32 jobSpecHash,uint256 nonce,uint64 expiry)";
    string internal constant ASK_TYPE =
        "Ask(address provider,bytes32 product,bytes32 hostId,uint16 gpus,uint32 maxDuration,uint128 minPricePerGpuHour,uint256 nonce,uint64 expiry)";
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    function test_typeHashes_matchTheirTypeStrings() public pure {
        vm.assertEq(OrderHashes.BID_TYPEHASH, keccak256(bytes(OrderHashes.BID_TYPE)), "bid: hash of its string");
        vm.assertEq(OrderHashes.ASK_TYPEHASH, keccak256(bytes(OrderHashes.ASK_TYPE)), "ask: hash of its string");
        vm.assertEq(OrderHashes.BID_TYPEHASH, keccak256(bytes(BID_TYPE)), "bid: the published string");
        vm.assertEq(OrderHashes.ASK_TYPEHASH, keccak256(bytes(ASK_TYPE)), "ask: the published string");
        // Pinned from an independent keccak (Python eth-hash), so a silent edit to either string fails here.
        vm.assertEq(
            OrderHashes.BID_TYPEHASH, 0x54cab786c4d243bf304c3933daddb09d41e13eda53a56dfe47a57ac0b924e1c6, "bid pinned"
        );
        vm.assertEq(
            OrderHashes.ASK_TYPEHASH, 0x84b4b74045eb73aa1f3ff138f8db525f53de97de783ef3e2d4c88c594e14e3ed, "ask pinned"
        );
    }

    function _domainSeparator(uint256 chainId, address verifyingContract) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("gpuspot"), keccak256("1"), chainId, verifyingContract)
        );
    }

    function _manualDigest(Bid memory bid, uint256 chainId, address verifyingContract)
        internal
        pure
        returns (bytes32)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(bytes(BID_TYPE)),
                bid.buyer,
                bid.product,
                bid.gpus,
                bid.duration,
                bid.maxPricePerGpuHour,
                bid.jobSpecHash,
                bid.nonce,
                bid.expiry
            )
        );
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(chainId, verifyingContract), structHash));
    }

    function test_eip712Domain_isGpuspotVersion1OnThisChainAndContract() public view {
        (, string memory name, string memory version, uint256 chainId, address verifyingContract,,) =
            escrow.eip712Domain();
        vm.assertEq(keccak256(bytes(name)), keccak256("gpuspot"), "name");
        vm.assertEq(keccak256(bytes(version)), keccak256("1"), "version");
        vm.assertEq(chainId, 31337, "chain id");
        vm.assertEq(verifyingContract, address(escrow), "verifying contract");
    }

    function test_bidDigest_matchesAManualEip712Computation() public view {
        Bid memory bid = _bid(buyer, 42);
        vm.assertEq(escrow.bidDigest(bid), _manualDigest(bid, block.chainid, address(escrow)), "digest");
    }

    function testFuzz_bidDigest_matchesAManualEip712Computation(Bid memory bid) public view {
        vm.assertEq(escrow.bidDigest(bid), _manualDigest(bid, block.chainid, address(escrow)), "digest");
    }

    function test_bidDigest_followsTheChainId() public {
        Bid memory bid = _bid(buyer, 42);
        vm.chainId(1);
        vm.assertEq(escrow.bidDigest(bid), _manualDigest(bid, 1, address(escrow)), "digest on chain 1");
    }

    function test_leaseLeaf_isTheDoubleHashOfTheAbiEncodedValues() public {
        IEscrow.SignedLease memory lease = _lease(BUYER_KEY, 3);
        bytes32 digest = escrow.bidDigest(lease.bid);
        for (uint8 kind; kind < 3; ++kind) {
            uint64 used = kind == 0 ? 0 : 1234;
            bytes32 expected = keccak256(
                bytes.concat(
                    keccak256(
                        abi.encode(
                            kind,
                            uint64(9),
                            lease.leaseId,
                            digest,
                            lease.bid.buyer,
                            lease.provider,
                            lease.bid.product,
                            lease.bid.gpus,
                            lease.bid.duration,
                            lease.pricePerGpuHour,
                            used
                        )
                    )
                )
            );
            vm.assertEq(escrow.leaseLeaf(kind, 9, lease, used), expected, "leaf");
        }
    }
}
