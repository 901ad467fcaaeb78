"""Delivery evidence on the matcher's side (docs/evidence.md): the matcher is the verifier.

- `proven`: the proven-time rule, a pure function of receipts, challenges and the lease's terms.
- `verifier`: `EvidenceVerifier`, which checks and stores blobs, receipts, challenge commitments and
  openings, issues and expires challenges, and decides each batch's usage leaves.
"""

from matcher.evidence.proven import EndReason, ProvenTime, proven_time

__all__ = ["EndReason", "ProvenTime", "proven_time"]
