"""Client-side envelope encryption: AES-256-GCM under data keys from KMS ``GenerateDataKey``.

Blob layout (all integers big-endian)::

    b"CCENV" | version (1 byte, = 1) | header length (4 bytes) | header (UTF-8 JSON)
    | nonce (12 bytes) | AES-256-GCM ciphertext with its 16-byte tag

The header is ``{"alg": "AES-256-GCM", "kms_key": ARN, "edk": base64(encrypted data key),
"kms_context": [names]}``. The GCM associated data is everything before the nonce followed by
the canonical JSON of the full encryption context, so changing the header or decrypting under
another context fails. The context entries named in ``kms_context`` (by default the workspace)
are also KMS's EncryptionContext for the data key: that part is enforced by KMS and logged in
CloudTrail, while the per-object entries (the object key) are enforced by GCM. Keeping the
object key out of the KMS context lets one data key serve many objects, which saves a KMS call
per write.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ccstate.backends import aws
from ccstate.service import errors
from ccstate.service.ports import ObjectStore, StoredObject
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"CCENV"
VERSION = 1
ALGORITHM = "AES-256-GCM"
NONCE_BYTES = 12
DECRYPTED_KEYS_CACHED = 64
_PREFIX = struct.Struct(">5sBI")  # magic, version, header length
INTEGRITY_CODES = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


def canonical(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class _DataKey:
    plaintext: bytes
    encrypted: bytes
    kms_key: str
    born: float
    uses: int = 0


class KmsEnvelopeCipher:
    """Cipher protocol over KMS. Data keys are cached in memory for ``max_age`` seconds or
    ``max_uses`` encryptions, whichever comes first; decrypted data keys likewise."""

    def __init__(
        self,
        kms_client: Any,
        kms_key_id: str,
        *,
        kms_context_keys: tuple[str, ...] | None = ("workspace",),
        max_age: float = 300.0,
        max_uses: int = 1000,
        whoami: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.client = kms_client
        self.kms_key_id = kms_key_id
        self.kms_context_keys = kms_context_keys
        self.max_age = max_age
        self.max_uses = max_uses
        self.whoami = whoami
        self._encrypt_keys: dict[bytes, _DataKey] = {}
        self._decrypt_keys: OrderedDict[bytes, _DataKey] = OrderedDict()
        self._lock = asyncio.Lock()

    def aws_clients(self) -> list[Any]:
        return [self.client]

    async def encrypt(self, plaintext: bytes, context: dict[str, str]) -> bytes:
        kms_context = self._kms_context(context)
        key = await self._data_key_for_encryption(kms_context)
        header = json.dumps(
            {
                "alg": ALGORITHM,
                "kms_key": key.kms_key,
                "edk": base64.b64encode(key.encrypted).decode(),
                "kms_context": sorted(kms_context),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        head = _PREFIX.pack(MAGIC, VERSION, len(header)) + header
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key.plaintext).encrypt(nonce, plaintext, head + canonical(context))
        return head + nonce + sealed

    async def decrypt(self, blob: bytes, context: dict[str, str]) -> bytes:
        head, header, nonce, sealed = _parse(blob, context)
        encrypted_key = base64.b64decode(header["edk"])
        kms_context = self._kms_context(context)
        data_key = await self._data_key_for_decryption(encrypted_key, kms_context, context)
        try:
            return AESGCM(data_key).decrypt(nonce, sealed, head + canonical(context))
        except InvalidTag as exc:
            raise _context_mismatch(context) from exc

    # ------------------------------------------------------------------ data keys

    def _kms_context(self, context: dict[str, str]) -> dict[str, str]:
        if self.kms_context_keys is None:
            return dict(context)
        return {name: context[name] for name in self.kms_context_keys if name in context}

    async def _data_key_for_encryption(self, kms_context: dict[str, str]) -> _DataKey:
        slot = canonical(kms_context)
        async with self._lock:
            key = self._encrypt_keys.get(slot)
            if key is None or self._worn_out(key):
                resp = await self._kms(
                    "kms:GenerateDataKey",
                    self.client.generate_data_key,
                    KeyId=self.kms_key_id,
                    KeySpec="AES_256",
                    EncryptionContext=kms_context,
                )
                key = _DataKey(
                    plaintext=resp["Plaintext"],
                    encrypted=resp["CiphertextBlob"],
                    kms_key=str(resp.get("KeyId") or self.kms_key_id),
                    born=time.monotonic(),
                )
                self._encrypt_keys[slot] = key
                # What we just wrote we can read back without asking KMS.
                self._remember(key.encrypted + b"\x00" + slot, key.plaintext)
            key.uses += 1
            return key

    async def _data_key_for_decryption(
        self, encrypted_key: bytes, kms_context: dict[str, str], context: dict[str, str]
    ) -> bytes:
        slot = encrypted_key + b"\x00" + canonical(kms_context)
        cached = self._decrypt_keys.get(slot)
        if cached is not None and time.monotonic() - cached.born < self.max_age:
            self._decrypt_keys.move_to_end(slot)
            return cached.plaintext
        try:
            resp = await self._kms(
                "kms:Decrypt",
                self.client.decrypt,
                CiphertextBlob=encrypted_key,
                EncryptionContext=kms_context,
            )
        except errors.IntegrityError as exc:
            raise _context_mismatch(context) from exc
        plaintext: bytes = resp["Plaintext"]
        self._remember(slot, plaintext)
        return plaintext

    def _remember(self, slot: bytes, plaintext: bytes) -> None:
        self._decrypt_keys[slot] = _DataKey(plaintext, b"", "", time.monotonic())
        while len(self._decrypt_keys) > DECRYPTED_KEYS_CACHED:
            self._decrypt_keys.popitem(last=False)

    def _worn_out(self, key: _DataKey) -> bool:
        return key.uses >= self.max_uses or time.monotonic() - key.born >= self.max_age

    async def _kms(self, action: str, fn: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        try:
            return await aws.call_with_retry(fn, **kwargs)
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) in INTEGRITY_CODES:
                raise errors.IntegrityError(
                    f"KMS could not decrypt a data key: {aws.error_code(exc)}."
                ) from exc
            raise await aws.translate_with_caller(
                exc,
                self.whoami,
                what=f"KMS key {self.kms_key_id}",
                iam_action=action,
                kms_key=self.kms_key_id,
            ) from exc


def _parse(blob: bytes, context: dict[str, str]) -> tuple[bytes, dict[str, Any], bytes, bytes]:
    if len(blob) < _PREFIX.size or blob[: len(MAGIC)] != MAGIC:
        raise errors.IntegrityError(
            f"{_describe(context)} is not a ccstate envelope-encrypted object.",
            next_step="It was written without client-side encryption or damaged: restore the "
            "previous version of the object, or open the backend without encrypt=client.",
            context=context,
        )
    _, version, header_len = _PREFIX.unpack_from(blob)
    if version != VERSION:
        raise errors.UnsupportedVersion(
            f"{_describe(context)} uses envelope format version {version}; this ccstate "
            f"reads version {VERSION}.",
            next_step="Upgrade ccstate on this machine.",
        )
    start = _PREFIX.size
    try:
        header = json.loads(blob[start : start + header_len])
        base64.b64decode(header["edk"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.IntegrityError(
            f"{_describe(context)} has a damaged envelope header.",
            next_step="Restore the previous version of the object.",
        ) from exc
    body_start = start + header_len
    nonce = blob[body_start : body_start + NONCE_BYTES]
    return blob[:body_start], header, nonce, blob[body_start + NONCE_BYTES :]


def _describe(context: dict[str, str]) -> str:
    return f"Object '{context['key']}'" if "key" in context else f"Blob for {context}"


def _context_mismatch(context: dict[str, str]) -> errors.IntegrityError:
    return errors.IntegrityError(
        f"{_describe(context)} failed authenticated decryption under context {context}: it was "
        "encrypted for another workspace or key, or it was altered.",
        next_step="Restore the previous version of the object; never copy encrypted state "
        "objects between keys or workspaces by hand (use `ccstate state pull`/`push`).",
        context=context,
    )


# --------------------------------------------------------------------------- object store


class EncryptingObjectStore:
    """Any ObjectStore, with bodies envelope-encrypted. The context of an object is its key and
    the key's first segment (the workspace), so a body moved to another key does not decrypt."""

    def __init__(self, inner: ObjectStore, cipher: Any) -> None:
        self.inner = inner
        self.cipher = cipher

    def describe(self) -> str:
        return f"{self.inner.describe()} (client-side encrypted)"

    def aws_clients(self) -> list[Any]:
        clients: list[Any] = []
        for part in (self.inner, self.cipher):
            found = getattr(part, "aws_clients", None)
            if callable(found):
                clients.extend(found())
        return clients

    async def get(self, key: str) -> StoredObject | None:
        stored = await self.inner.get(key)
        if stored is None:
            return None
        body = await self.cipher.decrypt(stored.body, self.context(key))
        return StoredObject(body=body, etag=stored.etag)

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        return await self.inner.put_if_absent(key, await self._seal(key, body))

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        return await self.inner.put(key, await self._seal(key, body), if_match=if_match)

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        return await self.inner.list_keys(prefix, start_after=start_after)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def existed(self, key: str) -> bool:
        return await self.inner.existed(key)

    @staticmethod
    def context(key: str) -> dict[str, str]:
        return {"workspace": key.split("/", 1)[0], "key": key}

    async def _seal(self, key: str, body: bytes) -> bytes:
        return await self.cipher.encrypt(body, self.context(key))
