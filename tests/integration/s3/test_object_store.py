"""S3ObjectStore against a real HTTP endpoint: write-once, compare-and-swap, integrity, SSE-KMS."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from ccstate.backends.base import Backend
from ccstate.service import errors

from tests.integration.s3.conftest import S3Setup, unique

KEY = "default/log/00000000000000000001.json"


async def test_write_once_then_read_back(backend: Backend) -> None:
    assert await backend.objects.put_if_absent(KEY, b'{"serial": 1}')
    assert not await backend.objects.put_if_absent(KEY, b'{"serial": "other"}')

    stored = await backend.objects.get(KEY)
    assert stored is not None
    assert stored.body == b'{"serial": 1}'
    assert await backend.objects.get("default/log/00000000000000000002.json") is None


async def test_objects_live_under_the_prefix_with_sse_kms_and_sha256(
    backend: Backend, s3_setup: S3Setup
) -> None:
    await backend.objects.put_if_absent(KEY, b"body")

    head = s3_setup.client("s3").head_object(Bucket=s3_setup.bucket, Key=f"{s3_setup.prefix}/{KEY}")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(s3_setup.kms_key.rsplit("/", 1)[-1])
    assert head["Metadata"]["sha256"] == hashlib.sha256(b"body").hexdigest()
    assert backend.objects.describe() == f"s3://{s3_setup.bucket}/{s3_setup.prefix}"


async def test_concurrent_put_if_absent_has_exactly_one_winner(backend: Backend) -> None:
    bodies = [f"writer {n}".encode() for n in range(24)]

    won = await asyncio.gather(*(backend.objects.put_if_absent(KEY, body) for body in bodies))

    assert sum(won) == 1
    stored = await backend.objects.get(KEY)
    assert stored is not None
    assert stored.body == bodies[won.index(True)]


async def test_put_if_match_swaps_only_the_version_that_was_read(backend: Backend) -> None:
    key = "default/HEAD"
    first = await backend.objects.put(key, b"1")
    second = await backend.objects.put(key, b"2", if_match=first)

    with pytest.raises(errors.PreconditionFailed) as stale:
        await backend.objects.put(key, b"3", if_match=first)

    assert "changed since it was read" in str(stale.value)
    stored = await backend.objects.get(key)
    assert stored is not None
    assert (stored.body, stored.etag) == (b"2", second)
    with pytest.raises(errors.PreconditionFailed):
        await backend.objects.put("default/absent", b"x", if_match=second)


async def test_list_keys_is_ordered_and_starts_after(backend: Backend) -> None:
    for serial in (3, 1, 2):
        await backend.objects.put_if_absent(f"default/log/{serial:020d}.json", b"x")
    await backend.objects.put_if_absent("other/log/00000000000000000001.json", b"x")

    keys = await backend.objects.list_keys("default/log/")
    after = await backend.objects.list_keys("default/log/", start_after=keys[0])

    assert keys == [f"default/log/{serial:020d}.json" for serial in (1, 2, 3)]
    assert after == keys[1:]


async def test_delete_removes_and_tolerates_absent_keys(backend: Backend) -> None:
    await backend.objects.put_if_absent(KEY, b"x")
    await backend.objects.delete(KEY)
    await backend.objects.delete(KEY)
    assert await backend.objects.get(KEY) is None


async def test_body_changed_outside_ccstate_is_rejected(
    backend: Backend, s3_setup: S3Setup
) -> None:
    await backend.objects.put_if_absent(KEY, b'{"serial": 1}')
    s3_setup.client("s3").put_object(
        Bucket=s3_setup.bucket,
        Key=f"{s3_setup.prefix}/{KEY}",
        Body=b'{"serial": 1, "evil": true}',
        Metadata={"sha256": hashlib.sha256(b'{"serial": 1}').hexdigest()},
    )

    with pytest.raises(errors.IntegrityError) as tampered:
        await backend.objects.get(KEY)

    message = str(tampered.value)
    assert f"{s3_setup.prefix}/{KEY}" in message
    assert "does not match its sha256" in message
    assert "previous version" in message


async def test_object_without_checksum_is_rejected(backend: Backend, s3_setup: S3Setup) -> None:
    s3_setup.client("s3").put_object(
        Bucket=s3_setup.bucket, Key=f"{s3_setup.prefix}/{KEY}", Body=b"uploaded by hand"
    )

    with pytest.raises(errors.IntegrityError, match="has no sha256 metadata"):
        await backend.objects.get(KEY)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "nul\x00"])
async def test_malformed_keys_are_refused(backend: Backend, key: str) -> None:
    with pytest.raises(errors.InvalidInput):
        await backend.objects.put_if_absent(key, b"x")


async def test_missing_bucket_names_the_fix(s3_setup: S3Setup) -> None:
    missing = S3Setup(s3_setup.endpoint, unique("none"), s3_setup.table, s3_setup.kms_key, "p")

    with pytest.raises(errors.NotFound) as absent:
        await missing.open()

    assert missing.bucket in str(absent.value)
    assert "ccstate backend bootstrap" in str(absent.value)


async def test_opens_from_a_backend_url(s3_setup: S3Setup) -> None:
    from ccstate.backends.config import Settings
    from ccstate.backends.factory import open_backend

    url = (
        f"s3://{s3_setup.bucket}/{s3_setup.prefix}?table={s3_setup.table}"
        f"&kms_key={s3_setup.kms_key}&encrypt=client"
    )
    backend = await open_backend(url, settings=Settings())
    try:
        assert await backend.objects.put_if_absent(KEY, b"via url")
        stored = await backend.objects.get(KEY)
        assert stored is not None and stored.body == b"via url"
        assert "client-side encrypted" in backend.objects.describe()
        assert backend.url.startswith(f"s3://{s3_setup.bucket}/{s3_setup.prefix}?")
    finally:
        await backend.close()
