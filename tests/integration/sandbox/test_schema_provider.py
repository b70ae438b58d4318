"""backends/schemas.py: DescribeType through the sandbox, the disk cache, the offline fallback."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from ccstate.backends.schemas import CloudFormationSchemaProvider, default_cache_dir
from ccstate.sandbox import Sandbox
from ccstate.sandbox.moto_server import free_port
from ccstate.service import errors

BUCKET = "AWS::S3::Bucket"


def cache_file(home: Path, name: str = "aws-s3-bucket.json") -> Path:
    return home / ".aws" / "ccapi-mcp-server" / "schemas" / name


def closed_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


async def test_offline_uses_the_bundled_schemas_and_writes_nothing(_isolated_home: Path) -> None:
    provider = CloudFormationSchemaProvider(offline=True)
    schema = await provider.get_schema(BUCKET)

    assert schema.primary_identifier == ("/BucketName",)
    assert "/Arn" in schema.read_only
    assert "/Tags" in schema.unordered_arrays
    assert schema.tags_property == "/Tags"
    assert not cache_file(_isolated_home).exists()


async def test_unreachable_endpoint_falls_back_to_bundled(_isolated_home: Path) -> None:
    provider = CloudFormationSchemaProvider(endpoint_url=closed_endpoint(), timeout_seconds=5)
    schema = await provider.get_schema("AWS::EC2::SecurityGroup")
    assert schema.primary_identifier == ("/Id",)
    assert "/SecurityGroupIngress" in schema.unordered_arrays
    assert not cache_file(_isolated_home, "aws-ec2-securitygroup.json").exists()


async def test_describe_type_result_is_cached_0600_and_reused(
    sandbox: Sandbox, _isolated_home: Path
) -> None:
    fetched = await CloudFormationSchemaProvider(endpoint_url=sandbox.endpoint_url).get_schema(
        BUCKET
    )
    path = cache_file(_isolated_home)
    assert path.parent == default_cache_dir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["typeName"] == BUCKET
    assert fetched.primary_identifier == ("/BucketName",)

    doc = json.loads(path.read_text())
    doc["description"] = "served from the disk cache"
    path.write_text(json.dumps(doc))
    again = await CloudFormationSchemaProvider(endpoint_url=closed_endpoint()).get_schema(BUCKET)
    assert again.raw["description"] == "served from the disk cache"


async def test_expired_cache_is_fetched_again(sandbox: Sandbox, _isolated_home: Path) -> None:
    provider = CloudFormationSchemaProvider(endpoint_url=sandbox.endpoint_url, ttl_seconds=60)
    await provider.get_schema(BUCKET)
    path = cache_file(_isolated_home)
    doc = json.loads(path.read_text())
    doc["description"] = "stale"
    path.write_text(json.dumps(doc))
    old = time.time() - 3600
    os.utime(path, (old, old))

    fresh = await CloudFormationSchemaProvider(
        endpoint_url=sandbox.endpoint_url, ttl_seconds=60
    ).get_schema(BUCKET)
    assert fresh.raw["description"] != "stale"


async def test_honours_aws_endpoint_url(
    sandbox: Sandbox, _isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.endpoint_url)
    await CloudFormationSchemaProvider().get_schema("AWS::SQS::Queue")
    assert cache_file(_isolated_home, "aws-sqs-queue.json").exists()


async def test_memory_cache_returns_the_same_schema(_isolated_home: Path) -> None:
    provider = CloudFormationSchemaProvider(offline=True)
    assert await provider.get_schema(BUCKET) is await provider.get_schema(BUCKET)


async def test_unknown_and_malformed_type_names(_isolated_home: Path) -> None:
    provider = CloudFormationSchemaProvider(offline=True)
    with pytest.raises(errors.NotFound):
        await provider.get_schema("AWS::Nope::Thing")
    with pytest.raises(errors.InvalidInput):
        await provider.get_schema("../../etc/passwd")
