"""Sealing what a token authorizes, with a key only the token's holder can derive.

AES-256-GCM under a key derived (HKDF-SHA256) from the raw token. The associated data binds
the seal to the token's hash and to whatever else the caller wants authenticated (for token
records: every field but the seal), so storage never holds the token nor the payload in clear,
and an edited record no longer opens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

from ccstate.service.state.model import canonical_json
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INFO = b"ccstate token payload"


class SealBroken(ValueError):
    """The sealed value does not open with this token and this associated data."""


def _key(token: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO)
    return hkdf.derive(token.encode())


def _aad(token: str, bound: bytes) -> bytes:
    aad = hashlib.sha256(token.encode()).hexdigest().encode()
    return aad + b"\n" + bound if bound else aad


def seal(token: str, payload: Any, bound: bytes = b"") -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_key(token)).encrypt(nonce, canonical_json(payload), _aad(token, bound))
    return base64.b64encode(nonce + sealed).decode()


def unseal(token: str, sealed: str, bound: bytes = b"") -> Any:
    try:
        raw = base64.b64decode(sealed)
        plain = AESGCM(_key(token)).decrypt(raw[:12], raw[12:], _aad(token, bound))
    except (InvalidTag, ValueError) as exc:
        raise SealBroken("the sealed value fails its integrity check") from exc
    return json.loads(plain)
