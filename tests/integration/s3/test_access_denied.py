"""Refused credentials become AccessDenied errors that name the caller, resource and action.

Runs on its own moto server with IAM enforcement switched on (moto's reset-auth API), so it
does not disturb the shared endpoint.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from ccstate.backends.bootstrap import bootstrap
from ccstate.backends.s3 import open_s3_backend_from_options
from ccstate.sandbox.moto_server import MotoServer, start_moto
from ccstate.service import errors
from ccstate.service.ports import LockScope

from tests.integration.s3.conftest import unique

READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            # moto names HeadBucket's permission s3:HeadBucket; AWS checks s3:ListBucket.
            "Action": ["s3:ListBucket", "s3:HeadBucket", "s3:GetObject", "sts:GetCallerIdentity"],
            "Resource": "*",
        }
    ],
}


@pytest.fixture
def enforcing_moto() -> Iterator[MotoServer]:
    server = start_moto(separate_process=True)
    try:
        yield server
    finally:
        server.stop()


def read_only_user(endpoint: str) -> tuple[str, str]:
    iam = boto3.client("iam", endpoint_url=endpoint)
    iam.create_user(UserName="reader")
    iam.put_user_policy(
        UserName="reader", PolicyName="read-only", PolicyDocument=json.dumps(READ_ONLY)
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def enforce_iam(endpoint: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).read()


async def test_denied_write_and_lock_name_caller_resource_and_permission(
    enforcing_moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = enforcing_moto.url
    bucket, table = unique("bkt"), unique("locks")
    report = await bootstrap(bucket, table, endpoint_url=endpoint)
    access_key, secret = read_only_user(endpoint)
    enforce_iam(endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)

    backend = await open_s3_backend_from_options(
        bucket,
        "team",
        table=table,
        kms_key=report["kms_key"],
        region=None,
        encrypt=None,
        endpoint_url=endpoint,
    )
    try:
        with pytest.raises(errors.AccessDenied) as denied_put:
            await backend.objects.put_if_absent("default/log/1.json", b"x")
        with pytest.raises(errors.AccessDenied) as denied_lock:
            await backend.locks.acquire(
                LockScope("default"), operation="t", who="me", lease_seconds=5, timeout=0
            )
    finally:
        await backend.close()

    put = str(denied_put.value)
    assert "s3:PutObject" in put
    assert f"s3://{bucket}/team/default/log/1.json" in put
    assert report["kms_key"] in put
    assert "user/reader" in put
    assert "Grant" in denied_put.value.next_step
    lock = str(denied_lock.value)
    assert "dynamodb:PutItem" in lock and table in lock and "user/reader" in lock
