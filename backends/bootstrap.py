"""Create (or bring up to standard) the team backend's bucket, lock table and KMS key.

Idempotent: each setting is read first and written only when it differs, and the report lists
what changed and what already was right. A second run changes nothing and says so.
The same resources as infra/state-backend.yaml (`ccstate bootstrap --print-template`), for
users without CloudFormation.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from ccstate.backends import aws
from ccstate.service import errors

log = logging.getLogger(__name__)

TLS_SID = "CcstateDenyInsecureTransport"
LIFECYCLE_RULE_ID = "ccstate-noncurrent-versions"
NONCURRENT_DAYS = 90
TTL_ATTRIBUTE = "ttl"
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
LOCK_KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]


@dataclass
class _Report:
    changes: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def changed(self, what: str) -> None:
        log.info("bootstrap: %s", what)
        self.changes.append(what)

    def kept(self, what: str) -> None:
        self.unchanged.append(what)


async def bootstrap(
    bucket: str,
    table: str,
    kms_key: str | None = None,
    region: str | None = None,
    *,
    endpoint_url: str | None = None,
    noncurrent_days: int = NONCURRENT_DAYS,
    require_tls: bool | None = None,
) -> dict[str, Any]:
    """Make sure the bucket, table and key exist and are configured; return a report.

    ``require_tls`` adds a bucket policy denying plain-HTTP requests. By default it is on,
    except when the configured endpoint itself is plain http:// (LocalStack, moto): the
    policy would then lock ccstate out of its own bucket.
    """
    if require_tls is None:
        endpoint = aws.endpoint_configured("s3", endpoint_url) or "https://"
        require_tls = not endpoint.startswith("http://")
    async with AsyncExitStack() as stack:
        session = aws.new_session(region)

        async def client(service: str) -> Any:
            return await aws.open_client(
                stack, session, service, region=region, endpoint_url=endpoint_url
            )

        boot = _Bootstrapper(await client("s3"), await client("dynamodb"), await client("kms"))
        try:
            return await boot.run(bucket, table, kms_key, noncurrent_days, require_tls)
        except aws.AWS_ERRORS as exc:
            raise aws.translate(exc, what=boot.current, iam_action=boot.action) from exc


class _Bootstrapper:
    def __init__(self, s3: Any, ddb: Any, kms: Any) -> None:
        self.s3, self.ddb, self.kms = s3, ddb, kms
        self.report = _Report()
        self.region = str(s3.meta.region_name)
        self.partition = _partition(self.region)
        self.current = "the backend"
        self.action = "bootstrap"

    def step(self, what: str, action: str) -> None:
        """Remember what we are touching, so an AWS error can name it."""
        self.current, self.action = what, action

    async def run(
        self,
        bucket: str,
        table: str,
        kms_key: str | None,
        noncurrent_days: int,
        require_tls: bool,
    ) -> dict[str, Any]:
        key_arn = await self._kms_key(bucket, kms_key)
        await self._bucket(bucket)
        await self._versioning(bucket)
        await self._encryption(bucket, key_arn)
        await self._public_access_block(bucket)
        await self._lifecycle(bucket, noncurrent_days)
        await self._table(table, key_arn)
        await self._pitr(table)
        await self._ttl(table)
        verified = await self._verify(bucket, table)
        if require_tls:  # last: over plain http (tests, LocalStack) it would refuse the probe
            await self._tls_policy(bucket)
        else:
            self.report.kept("TLS-only bucket policy skipped: the endpoint is plain http://")
        changes = self.report.changes
        return {
            "bucket": bucket,
            "table": table,
            "kms_key": key_arn,
            "region": self.region,
            "changed": bool(changes),
            "changes": changes,
            "unchanged": self.report.unchanged,
            "verified": verified,
            "backend_url": f"s3://{bucket}/?table={table}&kms_key={key_arn}&region={self.region}",
            "summary": (
                f"Made {len(changes)} change(s) to bucket {bucket}, table {table}."
                if changes
                else f"Nothing to change: bucket {bucket}, table {table} and KMS key are "
                "already configured."
            ),
        }

    # ------------------------------------------------------------------ KMS

    async def _kms_key(self, bucket: str, kms_key: str | None) -> str:
        if kms_key:
            self.step(f"KMS key {kms_key}", "kms:DescribeKey")
            meta = (await self.kms.describe_key(KeyId=kms_key))["KeyMetadata"]
            if meta.get("KeyState") != "Enabled":
                raise errors.ConfigError(
                    f"KMS key {kms_key} is {meta.get('KeyState')}, not Enabled.",
                    next_step="Enable the key, or run bootstrap without --kms-key to create one.",
                )
            self.report.kept(f"KMS key {meta['Arn']} (given)")
            return str(meta["Arn"])
        alias = "alias/ccstate/" + re.sub(r"[^A-Za-z0-9/_-]", "-", bucket)
        self.step(f"KMS alias {alias}", "kms:DescribeKey")
        try:
            meta = (await self.kms.describe_key(KeyId=alias))["KeyMetadata"]
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "NotFoundException":
                raise
            return await self._create_key(bucket, alias)
        self.report.kept(f"KMS key {meta['Arn']} ({alias})")
        await self._rotation(str(meta["KeyId"]))
        return str(meta["Arn"])

    async def _create_key(self, bucket: str, alias: str) -> str:
        self.step("a new KMS key", "kms:CreateKey")
        meta = (
            await self.kms.create_key(
                Description=f"ccstate state backend s3://{bucket}",
                Tags=[{"TagKey": "ccstate:bucket", "TagValue": bucket}],
            )
        )["KeyMetadata"]
        self.step(f"KMS key {meta['Arn']}", "kms:CreateAlias")
        await self.kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        self.report.changed(f"created KMS key {meta['Arn']} with alias {alias}")
        await self._rotation(str(meta["KeyId"]))
        return str(meta["Arn"])

    async def _rotation(self, key_id: str) -> None:
        self.step(f"KMS key {key_id}", "kms:GetKeyRotationStatus")
        status = await self.kms.get_key_rotation_status(KeyId=key_id)
        if status.get("KeyRotationEnabled"):
            self.report.kept("KMS key rotation enabled")
            return
        self.step(f"KMS key {key_id}", "kms:EnableKeyRotation")
        await self.kms.enable_key_rotation(KeyId=key_id)
        self.report.changed("enabled KMS key rotation")

    # ------------------------------------------------------------------ bucket

    async def _bucket(self, bucket: str) -> None:
        self.step(f"s3://{bucket}", "s3:ListBucket")
        try:
            await self.s3.head_bucket(Bucket=bucket)
            self.report.kept(f"bucket {bucket} exists")
            return
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        self.step(f"s3://{bucket}", "s3:CreateBucket")
        args: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        await self.s3.create_bucket(**args)
        self.report.changed(f"created bucket {bucket} in {self.region}")

    async def _versioning(self, bucket: str) -> None:
        self.step(f"s3://{bucket}", "s3:GetBucketVersioning")
        if (await self.s3.get_bucket_versioning(Bucket=bucket)).get("Status") == "Enabled":
            self.report.kept("bucket versioning enabled")
            return
        self.step(f"s3://{bucket}", "s3:PutBucketVersioning")
        await self.s3.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        self.report.changed("enabled bucket versioning")

    async def _encryption(self, bucket: str, key_arn: str) -> None:
        self.step(f"s3://{bucket}", "s3:GetEncryptionConfiguration")
        current = await self._default_encryption(bucket)
        if current.get("SSEAlgorithm") == "aws:kms" and _same_key(
            current.get("KMSMasterKeyID"), key_arn
        ):
            self.report.kept("bucket default encryption SSE-KMS with the state key")
            return
        self.step(f"s3://{bucket}", "s3:PutEncryptionConfiguration")
        await self.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": key_arn,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        self.report.changed(f"set bucket default encryption to SSE-KMS with {key_arn}")

    async def _default_encryption(self, bucket: str) -> dict[str, Any]:
        try:
            resp = await self.s3.get_bucket_encryption(Bucket=bucket)
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
                return {}
            raise
        rules = resp.get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
        return dict(rules[0].get("ApplyServerSideEncryptionByDefault", {})) if rules else {}

    async def _public_access_block(self, bucket: str) -> None:
        self.step(f"s3://{bucket}", "s3:GetBucketPublicAccessBlock")
        try:
            resp = await self.s3.get_public_access_block(Bucket=bucket)
            current = resp.get("PublicAccessBlockConfiguration", {})
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            current = {}
        if all(current.get(name) is True for name in PUBLIC_ACCESS_BLOCK):
            self.report.kept("public access blocked")
            return
        self.step(f"s3://{bucket}", "s3:PutBucketPublicAccessBlock")
        await self.s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK
        )
        self.report.changed("blocked all public access")

    async def _tls_policy(self, bucket: str) -> None:
        self.step(f"s3://{bucket}", "s3:GetBucketPolicy")
        try:
            policy = json.loads((await self.s3.get_bucket_policy(Bucket=bucket))["Policy"])
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "NoSuchBucketPolicy":
                raise
            policy = {"Version": "2012-10-17", "Statement": []}
        statements = policy.setdefault("Statement", [])
        if any(stmt.get("Sid") == TLS_SID for stmt in statements):
            self.report.kept("TLS-only bucket policy")
            return
        statements.append(_tls_statement(self.partition, bucket))
        self.step(f"s3://{bucket}", "s3:PutBucketPolicy")
        await self.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        self.report.changed("added the TLS-only statement to the bucket policy")

    async def _lifecycle(self, bucket: str, noncurrent_days: int) -> None:
        self.step(f"s3://{bucket}", "s3:GetLifecycleConfiguration")
        try:
            resp = await self.s3.get_bucket_lifecycle_configuration(Bucket=bucket)
            rules = list(resp.get("Rules", []))
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        wanted = _lifecycle_rule(noncurrent_days)
        ours = [rule for rule in rules if rule.get("ID") == LIFECYCLE_RULE_ID]
        if ours and _rule_matches(ours[0], wanted):
            self.report.kept(f"lifecycle: noncurrent versions expire after {noncurrent_days} days")
            return
        others = [rule for rule in rules if rule.get("ID") != LIFECYCLE_RULE_ID]
        self.step(f"s3://{bucket}", "s3:PutLifecycleConfiguration")
        await self.s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [*others, wanted]}
        )
        self.report.changed(f"lifecycle: noncurrent versions expire after {noncurrent_days} days")

    # ------------------------------------------------------------------ table

    async def _table(self, table: str, key_arn: str) -> None:
        self.step(f"DynamoDB table {table}", "dynamodb:DescribeTable")
        try:
            desc = (await self.ddb.describe_table(TableName=table))["Table"]
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                raise
            await self._create_table(table, key_arn)
            return
        if sorted(desc["KeySchema"], key=str) != sorted(LOCK_KEY_SCHEMA, key=str):
            raise errors.ConfigError(
                f"DynamoDB table {table} exists with key schema {desc['KeySchema']}; ccstate "
                "needs pk (string, hash) and sk (string, range).",
                next_step="Choose another table name for ccstate's locks.",
            )
        self.report.kept(f"table {table} exists")
        await self._table_sse(table, desc, key_arn)

    async def _create_table(self, table: str, key_arn: str) -> None:
        self.step(f"DynamoDB table {table}", "dynamodb:CreateTable")
        await self.ddb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=LOCK_KEY_SCHEMA,
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn},
            Tags=[{"Key": "ccstate:role", "Value": "locks"}],
        )
        await self.ddb.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        self.report.changed(f"created table {table} (on-demand, SSE-KMS)")

    async def _table_sse(self, table: str, desc: dict[str, Any], key_arn: str) -> None:
        if desc.get("SSEDescription", {}).get("Status") in {"ENABLED", "UPDATING"}:
            self.report.kept("table encrypted with KMS")
            return
        self.step(f"DynamoDB table {table}", "dynamodb:UpdateTable")
        await self.ddb.update_table(
            TableName=table,
            SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key_arn},
        )
        self.report.changed(f"enabled SSE-KMS on table {table}")

    async def _pitr(self, table: str) -> None:
        self.step(f"DynamoDB table {table}", "dynamodb:DescribeContinuousBackups")
        desc = (await self.ddb.describe_continuous_backups(TableName=table))[
            "ContinuousBackupsDescription"
        ]
        status = desc.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        if status == "ENABLED":
            self.report.kept("point-in-time recovery enabled")
            return
        self.step(f"DynamoDB table {table}", "dynamodb:UpdateContinuousBackups")
        await self.ddb.update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
        self.report.changed("enabled point-in-time recovery")

    async def _ttl(self, table: str) -> None:
        self.step(f"DynamoDB table {table}", "dynamodb:DescribeTimeToLive")
        desc = (await self.ddb.describe_time_to_live(TableName=table))["TimeToLiveDescription"]
        status, attribute = desc.get("TimeToLiveStatus"), desc.get("AttributeName")
        if status in {"ENABLED", "ENABLING"} and attribute == TTL_ATTRIBUTE:
            self.report.kept(f"TTL on '{TTL_ATTRIBUTE}'")
            return
        if status in {"ENABLED", "ENABLING"}:
            raise errors.ConfigError(
                f"DynamoDB table {table} has TTL on '{attribute}'; ccstate's locks expire "
                f"through '{TTL_ATTRIBUTE}'.",
                next_step="Use a dedicated table for ccstate's locks.",
            )
        self.step(f"DynamoDB table {table}", "dynamodb:UpdateTimeToLive")
        await self.ddb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        self.report.changed(f"enabled TTL on '{TTL_ATTRIBUTE}'")

    # ------------------------------------------------------------------ verification

    async def _verify(self, bucket: str, table: str) -> dict[str, Any]:
        self.step(f"s3://{bucket}", "s3:GetBucketVersioning")
        versioning = (await self.s3.get_bucket_versioning(Bucket=bucket)).get("Status")
        self.step(f"s3://{bucket}", "s3:GetEncryptionConfiguration")
        encryption = await self._default_encryption(bucket)
        self.step(f"DynamoDB table {table}", "dynamodb:DescribeTable")
        status = (await self.ddb.describe_table(TableName=table))["Table"]["TableStatus"]
        verified = {
            "versioning": versioning,
            "default_encryption": encryption.get("SSEAlgorithm"),
            "default_kms_key": encryption.get("KMSMasterKeyID"),
            "table_status": status,
            "conditional_writes": await self._conditional_writes(bucket),
        }
        if not verified["conditional_writes"]:
            raise errors.BackendError(
                f"s3://{bucket} accepted a second If-None-Match write to the same key: this "
                "endpoint ignores S3 conditional writes, so concurrent commits could overwrite "
                "each other.",
                next_step="Use AWS S3 or an S3-compatible store that supports conditional "
                "writes (LocalStack 4 or newer, MinIO).",
                verified=verified,
            )
        if versioning != "Enabled" or encryption.get("SSEAlgorithm") != "aws:kms":
            raise errors.BackendError(
                f"Bootstrap finished but s3://{bucket} reports versioning={versioning} and "
                f"default encryption={encryption.get('SSEAlgorithm')}.",
                next_step="Check for an SCP or bucket setting that blocks these changes.",
                verified=verified,
            )
        return verified

    async def _conditional_writes(self, bucket: str) -> bool:
        """Write a probe object twice with If-None-Match; the second must be refused."""
        key = f".ccstate-probe/{uuid.uuid4().hex}"
        self.step(f"s3://{bucket}/{key}", "s3:PutObject")
        await self.s3.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")
        try:
            await self.s3.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
            refused = False
        except aws.AWS_ERRORS as exc:
            if aws.error_code(exc) != "PreconditionFailed":
                raise
            refused = True
        self.step(f"s3://{bucket}/{key}", "s3:DeleteObject")
        await self.s3.delete_object(Bucket=bucket, Key=key)
        return refused


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _same_key(configured: str | None, key_arn: str) -> bool:
    if not configured:
        return False
    return configured == key_arn or key_arn.endswith("/" + configured)


def _tls_statement(partition: str, bucket: str) -> dict[str, Any]:
    return {
        "Sid": TLS_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _lifecycle_rule(noncurrent_days: int) -> dict[str, Any]:
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days},
        "Expiration": {"ExpiredObjectDeleteMarker": True},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }


def _rule_matches(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keys = ("Status", "NoncurrentVersionExpiration", "Expiration", "AbortIncompleteMultipartUpload")
    return all(current.get(key) == wanted[key] for key in keys)
