"""EIP-191 `personal_sign` messages the matcher accepts: order cancellations and stop requests.

One recovery for both, with any wallet's signature forms (v 27/28 or 0/1) as eth-account takes them; each
caller compares the signer with the account the message is about and says what to sign.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct

from gpuspot.protocol import InvalidSignatureError

__all__ = ["recover_personal_signer"]


def recover_personal_signer(text: str, signature: str | bytes) -> str:
    """The checksummed address whose `personal_sign` of `text` is `signature`; `InvalidSignatureError` when
    it is not a 65-byte signature that recovers a key."""
    try:
        return str(Account.recover_message(encode_defunct(text=text), signature=signature))
    except Exception:
        raise InvalidSignatureError("the signature is not a valid 65-byte signature") from None
