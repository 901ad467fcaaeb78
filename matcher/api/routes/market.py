"""GET /v1/market: what a client needs to sign orders for this market."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gpuspot.protocol import Ask, Bid
from gpuspot.protocol.orders import EIP712_DOMAIN_MEMBERS
from matcher.api.deps import Service

router = APIRouter(prefix="/v1", tags=["market"])


@router.get("/market")
def market(service: Service) -> dict[str, Any]:
    deployment = service.deployment
    evidence = service.evidence.policy
    return {
        "chain_id": deployment.chain_id,
        "contracts": {
            "escrow": deployment.escrow,
            "registry": deployment.registry,
            "token": deployment.token,
        },
        "token": {"address": deployment.token, "decimals": deployment.token_decimals},
        "parameters": deployment.parameters.model_dump(),
        "products": [
            {
                "name": p.name,
                "id": "0x" + bytes(p.id).hex(),
                "vram_gb": p.vram_gb,
                "interconnect": str(p.interconnect),
            }
            for p in service.catalog
        ],
        "eip712": {
            "domain": service.domain.as_dict(),
            "types": {
                "EIP712Domain": list(EIP712_DOMAIN_MEMBERS),
                "Bid": Bid.eip712_members(),
                "Ask": Ask.eip712_members(),
            },
        },
        "batch_interval": service.batch_interval,
        "pricing_rule": service.rule.value,
        "min_order_lifetime": service.policy.min_lifetime,
        "evidence": {
            "receipt_interval": evidence.receipt_interval,
            "evidence_timeout": evidence.evidence_timeout,
            "clock_skew": evidence.clock_skew,
            "usage_interval": evidence.usage_interval,
            "max_blob_bytes": evidence.max_blob_bytes,
            "challenge": {
                "interval": evidence.challenge_interval,
                "n": evidence.challenge_n,
                "deadline_ms": evidence.challenge_deadline_ms,
                "opening_timeout": evidence.opening_timeout,
                "opened_rows": evidence.audited_rows,
                "rounds": evidence.rounds,
            },
        },
    }
