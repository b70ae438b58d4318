"""Client-side envelope encryption: round trips, context binding, data-key reuse, any store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ccstate.backends import aws
from ccstate.backends.base import Backend
from ccstate.backends.crypto import EncryptingObjectStore, KmsEnvelopeCipher
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service import errors

from tests.integration.s3.conftest import S3Setup

SECRET = b'{"MasterUserPassword": "hunter2-but-longer"}'
CONTEXT = {"workspace": "default", "key": "default/log/00000000000000000001.json"}


@pytest.fixture
async def cipher(s3_setup: S3Setup) -> AsyncIterator[KmsEnvelopeCipher]:
    async with contextlib.AsyncExitStack() as stack:
        kms = await aws.open_client(stack, aws.new_session(), "kms")
        yield KmsEnvelopeCipher(kms, s3_setup.kms_key)


@pytest.fixture
async def encrypted_backend(s3_setup: S3Setup) -> AsyncIterator[Backend]:
    opened = await s3_setup.open(encrypt="client")
    try:
        yield opened
    finally:
        await opened.close()


async def test_round_trip(cipher: KmsEnvelopeCipher) -> None:
    blob = await cipher.encrypt(SECRET, CONTEXT)

    assert SECRET not in blob
    assert blob.startswith(b"CCENV\x01")
    assert await cipher.decrypt(blob, dict(CONTEXT)) == SECRET


@pytest.mark.parametrize(
    "other",
    [
        {"workspace": "default", "key": "default/log/00000000000000000002.json"},
        {"workspace": "prod", "key": "default/log/00000000000000000001.json"},
    ],
    ids=["other-key", "other-workspace"],
)
async def test_decrypting_under_another_context_fails(
    cipher: KmsEnvelopeCipher, other: dict[str, str]
) -> None:
    blob = await cipher.encrypt(SECRET, CONTEXT)

    with pytest.raises(errors.IntegrityError, match="another workspace or key"):
        await cipher.decrypt(blob, other)


async def test_altered_blob_fails(cipher: KmsEnvelopeCipher) -> None:
    blob = bytearray(await cipher.encrypt(SECRET, CONTEXT))
    blob[-5] ^= 1

    with pytest.raises(errors.IntegrityError):
        await cipher.decrypt(bytes(blob), CONTEXT)
    with pytest.raises(errors.IntegrityError, match="not a ccstate envelope"):
        await cipher.decrypt(SECRET, CONTEXT)


async def test_one_data_key_serves_many_objects(cipher: KmsEnvelopeCipher) -> None:
    counter = aws.RequestCounter().attach(cipher.client)

    blobs = [
        await cipher.encrypt(SECRET, {"workspace": "default", "key": f"default/log/{n}.json"})
        for n in range(10)
    ]
    for n, blob in enumerate(blobs):
        context = {"workspace": "default", "key": f"default/log/{n}.json"}
        assert await cipher.decrypt(blob, context) == SECRET

    assert counter.snapshot() == {"kms.GenerateDataKey": 1}


async def test_encrypted_backend_stores_only_ciphertext(
    encrypted_backend: Backend, s3_setup: S3Setup
) -> None:
    key = CONTEXT["key"]
    assert await encrypted_backend.objects.put_if_absent(key, SECRET)

    raw = s3_setup.client("s3").get_object(Bucket=s3_setup.bucket, Key=f"{s3_setup.prefix}/{key}")
    stored = await encrypted_backend.objects.get(key)

    assert SECRET not in raw["Body"].read()
    assert raw["ServerSideEncryption"] == "aws:kms"
    assert stored is not None and stored.body == SECRET
    assert "client-side encrypted" in encrypted_backend.objects.describe()


async def test_encrypted_object_copied_to_another_key_does_not_decrypt(
    encrypted_backend: Backend, s3_setup: S3Setup
) -> None:
    await encrypted_backend.objects.put_if_absent("default/snapshots/1.json", SECRET)
    source = {"Bucket": s3_setup.bucket, "Key": f"{s3_setup.prefix}/default/snapshots/1.json"}
    s3_setup.client("s3").copy_object(
        Bucket=s3_setup.bucket,
        Key=f"{s3_setup.prefix}/default/snapshots/2.json",
        CopySource=source,
    )

    with pytest.raises(errors.IntegrityError, match=r"default/snapshots/2\.json"):
        await encrypted_backend.objects.get("default/snapshots/2.json")


async def test_compare_and_swap_works_through_encryption(encrypted_backend: Backend) -> None:
    first = await encrypted_backend.objects.put("default/HEAD", b"1")
    await encrypted_backend.objects.put("default/HEAD", b"2", if_match=first)
    with pytest.raises(errors.PreconditionFailed):
        await encrypted_backend.objects.put("default/HEAD", b"3", if_match=first)


async def test_wraps_the_local_store_too(cipher: KmsEnvelopeCipher, tmp_path: Path) -> None:
    store = EncryptingObjectStore(LocalObjectStore(tmp_path / "state"), cipher)

    assert await store.put_if_absent(CONTEXT["key"], SECRET)

    on_disk = (tmp_path / "state" / CONTEXT["key"]).read_bytes()
    assert SECRET not in on_disk
    stored = await store.get(CONTEXT["key"])
    assert stored is not None and stored.body == SECRET
