// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The few Foundry cheatcodes this suite uses, declared here because forge-std is not installed. Signatures
/// must match Foundry's `Vm.sol` exactly: the cheatcode handler dispatches on the selector.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    // --- environment ----------------------------------------------------------------------------------------------
    function warp(uint256 newTimestamp) external;
    function chainId(uint256 newChainId) external;
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;
    function cool(address target) external;
    function label(address account, string calldata newLabel) external;
    function getBlockTimestamp() external view returns (uint256);

    // --- keys and signatures ------------------------------------------------------------------------------------
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);

    // --- expectations -------------------------------------------------------------------------------------------
    function expectRevert() external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert(bytes calldata revertData) external;
    function expectPartialRevert(bytes4 revertData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;
    function expectEmit(address emitter) external;
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);

    // --- fuzzing ------------------------------------------------------------------------------------------------
    function assume(bool condition) external pure;

    // --- gas ----------------------------------------------------------------------------------------------------
    function snapshotGasLastCall(string calldata group, string calldata name) external returns (uint256 gasUsed);
    function snapshotValue(string calldata group, string calldata name, uint256 value) external;
    function startSnapshotGas(string calldata group, string calldata name) external;
    function stopSnapshotGas() external returns (uint256 gasUsed);

    // --- strings ------------------------------------------------------------------------------------------------
    function toString(uint256 value) external pure returns (string memory);

    // --- assertions ---------------------------------------------------------------------------------------------
    function assertTrue(bool condition, string calldata message) external pure;
    function assertFalse(bool condition, string calldata message) external pure;
    function assertEq(uint256 left, uint256 right, string calldata message) external pure;
    function assertEq(address left, address right, string calldata message) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata message) external pure;
    function assertEq(bool left, bool right, string calldata message) external pure;
    function assertLe(uint256 left, uint256 right, string calldata message) external pure;
    function assertLt(uint256 left, uint256 right, string calldata message) external pure;
    function assertGe(uint256 left, uint256 right, string calldata message) external pure;
    function assertGt(uint256 left, uint256 right, string calldata message) external pure;
}

/// @dev Foundry's cheatcode address: `address(uint160(uint256(keccak256("hevm cheat code"))))`.
Vm constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

/// @notice Clamps `x` into `[min, max]` with a spread that keeps small fuzz inputs small (as forge-std's `bound`).
function bound(uint256 x, uint256 min, uint256 max) pure returns (uint256) {
    require(min <= max, "bound: min > max");
    if (x >= min && x <= max) return x;
    uint256 size = max - min;
    if (size == type(uint256).max) return x;
    return min + x % (size + 1);
}
