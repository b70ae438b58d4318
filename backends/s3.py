"""The team backend's object store: state objects in a versioned S3 bucket, encrypted with
SSE-KMS, each carrying a sha256 of its body in its metadata.

Write-once commits use S3 conditional writes (``If-None-Match: *``), compare-and-swap uses
``If-Match: <etag>``; a lost race is an answer (False / PreconditionFailed), never a retry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from ccstate.backends import aws
from ccstate.backends.base import Backend
from ccstate.service import errors, retry
from ccstate.service.ports import StoredObject

log = logging.getLogger(__name__)

SHA256_METADATA = "sha256"  # sent as the x-amz-meta-sha256 header
ENCRYPT_MODES = frozenset({"", "none", "sse", "client"})
# Reads of an object that lacks the sha256 header: again after 20 ms, then after 100 ms more.
METADATA_LAG_WAIT = retry.growing(0.02, 0.1, factor=5)


def validate_key(key: str) -> str:
    if (
        not isinstance(key, str)
        or not key
        or key.startswith("/")
        or "\x00" in key
        or ".." in key.split("/")
        or "" in key.split("/")
    ):
        raise errors.InvalidInput(
            f"Invalid object key {key!r}: keys are relative '/'-separated paths without "
            "empty or '..' segments, NUL or a leading '/'.",
            next_step="This is a bug in the caller; report it with the key above.",
        )
    return key


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class S3ObjectStore:
    """ObjectStore on one S3 bucket under ``prefix/``. One client, owned by the caller."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        kms_key: str | None = None,
        whoami: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.kms_key = kms_key or None
        self.whoami = whoami

    # ------------------------------------------------------------------ ObjectStore

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def aws_clients(self) -> list[Any]:
        return [self.client]

    async def get(self, key: str) -> StoredObject | None:
        full = self._full_key(key)
        try:
            # moto publishes a new object a moment before its metadata (AWS S3 never does):
            # look again before calling an object without the header foreign.
            resp, body = await retry.poll(
                lambda: aws.call_with_retry(self._fetch, full),
                done=lambda answer: SHA256_METADATA in (answer[0].get("Metadata") or {}),
                attempts=3,
                wait=METADATA_LAG_WAIT,
            )
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) in {"NoSuchKey", "404"}:
                return None
            raise await self._error(exc, full, "s3:GetObject") from exc
        self._check_integrity(full, body, resp.get("Metadata") or {})
        return StoredObject(body=body, etag=str(resp["ETag"]))

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        full = self._full_key(key)
        retried = False

        def note_retry() -> None:
            nonlocal retried
            retried = True

        try:
            await aws.call_with_retry(
                self.client.put_object,
                on_retry=note_retry,
                IfNoneMatch="*",
                **self._put_args(full, body),
            )
            return True
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "PreconditionFailed":
                raise await self._error(exc, full, "s3:PutObject") from exc
        # After a retry the object may be our own earlier attempt whose answer was lost.
        return retried and await self._holds_body(full, body)

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        full = self._full_key(key)
        extra: dict[str, Any] = {"IfMatch": if_match} if if_match else {}
        try:
            resp = await aws.call_with_retry(
                self.client.put_object, **extra, **self._put_args(full, body)
            )
        except aws.AWS_ERRORS as exc:
            if if_match and aws.error_code(exc) in {"PreconditionFailed", "NoSuchKey"}:
                raise errors.PreconditionFailed(
                    f"s3://{self.bucket}/{full} changed since it was read (ETag {if_match} "
                    "is no longer current); nothing was written.",
                    next_step="Read the object again and retry the change on top of it.",
                    key=key,
                ) from exc
            raise await self._error(exc, full, "s3:PutObject") from exc
        return str(resp["ETag"])

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": root + prefix}
        if start_after:
            args["StartAfter"] = root + start_after
        try:
            # A transient error on any page lists again from the start: listing is idempotent.
            return await aws.call_with_retry(self._list_all, args, len(root))
        except aws.AWS_ERRORS as exc:
            raise await self._error(exc, root + prefix, "s3:ListBucket") from exc

    async def delete(self, key: str) -> None:
        full = self._full_key(key)
        try:
            await aws.call_with_retry(self.client.delete_object, Bucket=self.bucket, Key=full)
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "NoSuchKey":
                raise await self._error(exc, full, "s3:DeleteObject") from exc

    async def existed(self, key: str) -> bool:
        """One ``HeadObject``: the bucket is versioned (bootstrap turns it on), so a key that
        was written and deleted answers 404 with ``x-amz-delete-marker: true``, and a key never
        written answers 404 without it. (``ListObjectVersions`` with the key as prefix says the
        same, but costs S3-compatible stores such as moto a walk over every version in the
        bucket: the soak of docs/performance.md spent a quarter of moto's time there.)"""
        full = self._full_key(key)
        try:
            await aws.call_with_retry(self.client.head_object, Bucket=self.bucket, Key=full)
        except aws.AWS_ERRORS as exc:
            if aws.http_status(exc) != 404:
                raise await self._error(exc, full, "s3:GetObject") from exc
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})  # type: ignore[attr-defined]
            return str(headers.get("x-amz-delete-marker", "")).lower() == "true"
        return True

    # ------------------------------------------------------------------ helpers

    async def _fetch(self, full: str) -> tuple[dict[str, Any], bytes]:
        """GetObject and its body together, so a connection dropped mid-body is retried too."""
        resp = await self.client.get_object(Bucket=self.bucket, Key=full)
        async with resp["Body"] as stream:
            return resp, await stream.read()

    async def _list_all(self, args: dict[str, Any], cut: int) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(**args)
        return [item["Key"][cut:] async for page in pages for item in page.get("Contents", [])]

    def _full_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _put_args(self, full: str, body: bytes) -> dict[str, Any]:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": full,
            "Body": body,
            "Metadata": {SHA256_METADATA: _sha256(body)},
            "ContentType": "application/octet-stream",
        }
        if self.kms_key:
            args["ServerSideEncryption"] = "aws:kms"
            args["SSEKMSKeyId"] = self.kms_key
        else:
            args["ServerSideEncryption"] = "AES256"
        return args

    def _check_integrity(self, full: str, body: bytes, metadata: dict[str, str]) -> None:
        expected = metadata.get(SHA256_METADATA)
        actual = _sha256(body)
        if expected == actual:
            return
        found = "has no sha256 metadata" if expected is None else "does not match its sha256"
        raise errors.IntegrityError(
            f"s3://{self.bucket}/{full} {found} (body sha256 {actual}, stored "
            f"{expected or 'none'}): it was changed outside ccstate or damaged.",
            next_step=(
                "Restore the previous version of this object from the bucket's version history "
                f"(`aws s3api list-object-versions --bucket {self.bucket} --prefix {full}`, then "
                "copy the last good version back), or investigate who wrote it."
            ),
            key=full,
            expected_sha256=expected,
            actual_sha256=actual,
        )

    async def _holds_body(self, full: str, body: bytes) -> bool:
        try:
            head = await aws.call_with_retry(self.client.head_object, Bucket=self.bucket, Key=full)
        except aws.AWS_ERRORS as exc:
            raise await self._error(exc, full, "s3:GetObject") from exc
        return (head.get("Metadata") or {}).get(SHA256_METADATA) == _sha256(body)

    async def _error(self, exc: BaseException, full: str, action: str) -> errors.CcstateError:
        return await aws.translate_with_caller(
            exc,
            self.whoami,
            what=f"s3://{self.bucket}/{full}",
            iam_action=action,
            kms_key=self.kms_key,
        )


# --------------------------------------------------------------------------- opening


async def open_s3_backend_from_options(
    bucket: str,
    prefix: str,
    *,
    table: str | None,
    kms_key: str | None,
    region: str | None,
    encrypt: str | None,
    workspace: str = "default",
    endpoint_url: str | None = None,
) -> Backend:
    """Open S3 objects + DynamoDB locks; the returned Backend's ``close()`` closes the clients.

    ``encrypt='client'`` adds client-side envelope encryption under ``kms_key``.
    ``endpoint_url`` overrides AWS_ENDPOINT_URL (botocore reads that one by itself).
    """
    from ccstate.backends.crypto import EncryptingObjectStore, KmsEnvelopeCipher
    from ccstate.backends.dynamodb import DynamoDBLockManager
    from ccstate.backends.dynamodb_serials import DynamoDBSequencer

    mode = _check_options(bucket, table, kms_key, encrypt)
    stack = AsyncExitStack()
    try:
        session = aws.new_session(region)
        s3 = await aws.open_client(stack, session, "s3", region=region, endpoint_url=endpoint_url)
        ddb = await aws.open_client(
            stack, session, "dynamodb", region=region, endpoint_url=endpoint_url
        )
        whoami = aws.CallerLookup(session, region=region, endpoint_url=endpoint_url)
        objects: Any = S3ObjectStore(s3, bucket, prefix, kms_key=kms_key, whoami=whoami)
        await _check_bucket(objects)
        if mode == "client":
            kms = await aws.open_client(
                stack, session, "kms", region=region, endpoint_url=endpoint_url
            )
            cipher = KmsEnvelopeCipher(kms, str(kms_key), whoami=whoami)
            objects = EncryptingObjectStore(objects, cipher)
        locks = DynamoDBLockManager(ddb, str(table), prefix, whoami=whoami)
        sequencer = DynamoDBSequencer(ddb, str(table), prefix, whoami=whoami)
    except BaseException:
        await stack.aclose()
        raise
    return Backend(
        url=_backend_url(bucket, prefix, table, kms_key, region, mode),
        objects=objects,
        locks=locks,
        sequencer=sequencer,
        options={"workspace": workspace, "table": table, "kms_key": kms_key, "encrypt": mode},
        _closers=[stack.aclose],
    )


async def open_s3_backend(spec: Any, settings: Any = None) -> Backend:
    """Adapter for backends.factory: ``spec`` has ``bucket``, ``prefix`` and ``options``."""
    options: dict[str, Any] = dict(getattr(spec, "options", {}) or {})
    workspace = getattr(settings, "workspace", None) or options.get("workspace") or "default"
    backend = await open_s3_backend_from_options(
        spec.bucket,
        getattr(spec, "prefix", "") or "",
        table=options.get("table"),
        kms_key=options.get("kms_key"),
        region=options.get("region"),
        encrypt=options.get("encrypt"),
        workspace=workspace,
        endpoint_url=options.get("endpoint_url"),
    )
    backend.url = getattr(spec, "url", None) or backend.url  # the factory's redacted form
    return backend


def _check_options(bucket: str, table: str | None, kms_key: str | None, encrypt: str | None) -> str:
    mode = (encrypt or "").strip().lower()
    if not bucket:
        raise errors.InvalidInput(
            "The S3 backend URL has no bucket.",
            next_step="Use s3://BUCKET/PREFIX?table=LOCK_TABLE.",
        )
    if not table:
        raise errors.InvalidInput(
            f"The S3 backend for bucket '{bucket}' has no DynamoDB lock table.",
            next_step=f"Add ?table=NAME to the URL (s3://{bucket}/PREFIX?table=ccstate-locks); "
            "`ccstate backend bootstrap` creates one.",
        )
    if mode not in ENCRYPT_MODES:
        raise errors.InvalidInput(
            f"Unknown encrypt={encrypt!r} in the S3 backend URL.",
            next_step="Use encrypt=client for client-side envelope encryption, or leave it out.",
        )
    if mode == "client" and not kms_key:
        raise errors.InvalidInput(
            "encrypt=client needs a KMS key for the envelope's data keys.",
            next_step="Add kms_key=KEY_ID_OR_ARN_OR_ALIAS to the backend URL.",
        )
    return "client" if mode == "client" else "sse"


async def _check_bucket(store: S3ObjectStore) -> None:
    """Fail early, with the fix, when the bucket is missing or unreadable."""
    try:
        await aws.call_with_retry(store.client.head_bucket, Bucket=store.bucket)
    except aws.AWS_ERRORS as exc:
        if aws.error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            raise errors.NotFound(
                f"The state bucket s3://{store.bucket} does not exist.",
                next_step=f"Create it with `ccstate backend bootstrap --bucket {store.bucket} "
                "--table TABLE`, or deploy the template that `ccstate bootstrap "
                "--print-template` prints, then retry.",
            ) from exc
        raise await aws.translate_with_caller(
            exc, store.whoami, what=f"s3://{store.bucket}", iam_action="s3:ListBucket"
        ) from exc


def _backend_url(
    bucket: str,
    prefix: str,
    table: str | None,
    kms_key: str | None,
    region: str | None,
    mode: str,
) -> str:
    query = [f"table={table}"]
    if kms_key:
        query.append(f"kms_key={kms_key}")
    if region:
        query.append(f"region={region}")
    if mode == "client":
        query.append("encrypt=client")
    return f"s3://{bucket}/{prefix.strip('/')}?" + "&".join(query)
