// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Bid} from "./Orders.sol";

/// @title LeaseMath
/// @notice Money for GPU time, in token base units, rounded down so that every partial payment of a lease sums to
/// at most its reservation.
library LeaseMath {
    uint256 internal constant SECONDS_PER_HOUR = 3600;

    /// @notice Cost of `usedGpuSeconds` at `pricePerGpuHour`. Monotone in both arguments, so a cumulative usage
    /// figure paid in steps never pays more than its final cost.
    function cost(uint256 usedGpuSeconds, uint256 pricePerGpuHour) internal pure returns (uint256) {
        return usedGpuSeconds * pricePerGpuHour / SECONDS_PER_HOUR;
    }

    /// @notice GPU-seconds the bid buys when it runs for its whole duration.
    function gpuSeconds(Bid calldata bid) internal pure returns (uint256) {
        return uint256(bid.gpus) * bid.duration;
    }

    /// @notice What a locked lease reserves from the buyer: the whole duration at the bid's price cap. The cap, not
    /// the clearing price, bounds what any root can make the buyer pay under this signature.
    function reservation(Bid calldata bid) internal pure returns (uint256) {
        return cost(gpuSeconds(bid), bid.maxPricePerGpuHour);
    }
}
