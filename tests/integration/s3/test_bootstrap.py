"""`bootstrap` creates a standard backend once, repairs drift, and changes nothing otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from ccstate.backends.bootstrap import bootstrap
from ccstate.service import errors

from tests.integration.s3.conftest import clean_up, unique


@pytest.fixture
def names(endpoint: str) -> Iterator[tuple[str, str]]:
    bucket, table = unique("bkt"), unique("locks")
    yield bucket, table
    key = f"alias/ccstate/{bucket}"
    try:
        arn = boto3.client("kms", endpoint_url=endpoint).describe_key(KeyId=key)["KeyMetadata"]
        clean_up(endpoint, bucket, table, arn["Arn"])
    except Exception:
        clean_up(endpoint, bucket, table, "none")


async def test_second_run_changes_nothing_and_says_so(
    endpoint: str, names: tuple[str, str]
) -> None:
    bucket, table = names
    first = await bootstrap(bucket, table)
    second = await bootstrap(bucket, table)

    assert first["changed"] and f"created bucket {bucket} in us-east-1" in first["changes"]
    assert second["changed"] is False and second["changes"] == []
    assert "Nothing to change" in second["summary"]
    assert second["kms_key"] == first["kms_key"]
    assert second["verified"]["versioning"] == "Enabled"
    assert second["verified"]["default_encryption"] == "aws:kms"
    assert second["verified"]["conditional_writes"] is True
    assert second["backend_url"].startswith(f"s3://{bucket}/?table={table}")


async def test_resources_are_configured_as_documented(
    endpoint: str, names: tuple[str, str]
) -> None:
    bucket, table = names
    report = await bootstrap(bucket, table, require_tls=True)

    s3 = boto3.client("s3", endpoint_url=endpoint)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    kms = boto3.client("kms", endpoint_url=endpoint)
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    backups = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    assert ddb.describe_table(TableName=table)["Table"]["BillingModeSummary"]["BillingMode"] == (
        "PAY_PER_REQUEST"
    )
    assert kms.get_key_rotation_status(KeyId=report["kms_key"])["KeyRotationEnabled"]


async def test_drift_is_repaired_and_reported(endpoint: str, names: tuple[str, str]) -> None:
    bucket, table = names
    await bootstrap(bucket, table)
    boto3.client("s3", endpoint_url=endpoint).put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
    )

    report = await bootstrap(bucket, table)

    assert report["changes"] == ["enabled bucket versioning"]
    assert report["verified"]["versioning"] == "Enabled"


async def test_given_key_is_used_for_bucket_and_table(
    endpoint: str, names: tuple[str, str]
) -> None:
    bucket, table = names
    kms = boto3.client("kms", endpoint_url=endpoint)
    arn = kms.create_key(Description="team key")["KeyMetadata"]["Arn"]

    report = await bootstrap(bucket, table, kms_key=arn)

    assert report["kms_key"] == arn
    assert report["verified"]["default_kms_key"] == arn
    assert not any("created KMS key" in change for change in report["changes"])


async def test_foreign_table_is_refused(endpoint: str, names: tuple[str, str]) -> None:
    bucket, table = names
    boto3.client("dynamodb", endpoint_url=endpoint).create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )

    with pytest.raises(errors.ConfigError, match="pk \\(string, hash\\) and sk"):
        await bootstrap(bucket, table)
