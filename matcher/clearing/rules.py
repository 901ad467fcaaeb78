"""The pluggable pricing rules: how the leases of one allocation are priced."""

from __future__ import annotations

from enum import StrEnum

from matcher.clearing.errors import UnknownPricingRuleError

__all__ = ["PricingRule"]


class PricingRule(StrEnum):
    """Every rule prices each lease once: the buyer pays exactly what the provider earns.

    - `uniform` (default): every lease at the clearing price.
    - `pay-as-bid`: the uniform allocation, each lease at its own bid's cap.
    - `mcafee`: single-price trade reduction (see docs/clearing.md): one price set by orders that do not
      trade, at the cost of the marginal trade when no such price fits every trade.
    """

    UNIFORM = "uniform"
    PAY_AS_BID = "pay-as-bid"
    MCAFEE = "mcafee"

    @classmethod
    def parse(cls, value: PricingRule | str) -> PricingRule:
        """The rule named `value` (a `PricingRule` or its name)."""
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(rule.value for rule in cls)
            raise UnknownPricingRuleError(f"unknown pricing rule {value!r}: use one of {names}") from None
