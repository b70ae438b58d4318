"""Fixtures for the S3 + DynamoDB backend: a bootstrapped bucket, table and key per test.

Names are unique per test, so the same tests run against moto (default) or any endpoint in
AWS_ENDPOINT_URL; teardown removes what a test created.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from ccstate.backends.base import Backend
from ccstate.backends.bootstrap import bootstrap
from ccstate.backends.s3 import open_s3_backend_from_options

WORKERS = Path(__file__).parent / "workers"
REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class S3Setup:
    endpoint: str
    bucket: str
    table: str
    kms_key: str
    prefix: str

    async def open(self, *, encrypt: str | None = None, prefix: str | None = None) -> Backend:
        return await open_s3_backend_from_options(
            self.bucket,
            self.prefix if prefix is None else prefix,
            table=self.table,
            kms_key=self.kms_key,
            region=None,
            encrypt=encrypt,
        )

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint)

    def worker_command(self, script: str, *args: str) -> list[str]:
        return [
            sys.executable,
            str(WORKERS / script),
            self.bucket,
            self.prefix,
            self.table,
            self.kms_key,
            *args,
        ]


def unique(kind: str) -> str:
    return f"ccstate-test-{kind}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def endpoint(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point botocore (here and in child processes) at the test endpoint."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_endpoint)
    return aws_endpoint


@pytest.fixture(scope="session")
def shared_resources(
    aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, str]]:
    """One bootstrapped bucket, table and key per test session (tests differ by prefix).

    Session fixtures run outside the per-test environment of tests/conftest.py, so this one
    sets up the same isolated HOME and test credentials for itself.
    """
    bucket, table = unique("bkt"), unique("locks")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(tmp_path_factory.mktemp("s3-session-home")))
        if not os.environ.get("CCSTATE_TEST_REAL_AWS"):
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                env.setenv(name, "testing")
            env.setenv("AWS_REGION", "us-east-1")
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.delenv("AWS_PROFILE", raising=False)
        report = asyncio.run(bootstrap(bucket, table, endpoint_url=aws_endpoint))
        try:
            yield bucket, table, report["kms_key"]
        finally:
            clean_up(aws_endpoint, bucket, table, report["kms_key"])


@pytest.fixture
def s3_setup(endpoint: str, shared_resources: tuple[str, str, str]) -> S3Setup:
    bucket, table, kms_key = shared_resources
    return S3Setup(endpoint, bucket, table, kms_key, prefix=unique("prefix"))


@pytest.fixture
async def backend(s3_setup: S3Setup) -> AsyncIterator[Backend]:
    opened = await s3_setup.open()
    try:
        yield opened
    finally:
        await opened.close()


def clean_up(endpoint: str, bucket: str, table: str, kms_key: str) -> None:
    """Best effort: empty and delete the bucket, delete the table, schedule the key's deletion."""
    s3 = boto3.client("s3", endpoint_url=endpoint)
    with contextlib.suppress(Exception):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed})
        s3.delete_bucket(Bucket=bucket)
    with contextlib.suppress(Exception):
        boto3.client("dynamodb", endpoint_url=endpoint).delete_table(TableName=table)
    with contextlib.suppress(Exception):
        kms = boto3.client("kms", endpoint_url=endpoint)
        kms.delete_alias(AliasName="alias/ccstate/" + bucket)
        kms.schedule_key_deletion(KeyId=kms_key.rsplit("/", 1)[-1], PendingWindowInDays=7)
