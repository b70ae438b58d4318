"""A small recorded state for CLI tests, written through the real store on a local directory.

serial 1  alice creates bucket 'logs-bucket'
serial 2  bob creates the queue QUEUE (an identifier with '/')
serial 3  bob updates 'logs-bucket' (adds versioning)
serial 4  alice deletes the queue
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

BUCKET = "logs-bucket"
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/jobs"
BUCKET_V1 = {"BucketName": BUCKET}
BUCKET_V2 = {"BucketName": BUCKET, "VersioningConfiguration": {"Status": "Enabled"}}
QUEUE_PROPS = {"QueueName": "jobs", "VisibilityTimeout": 30}
HEAD = 4


def _change(identifier: str, type_name: str, op: str, before, after) -> ResourceChange:
    return ResourceChange(
        identifier=identifier,
        resource_type=type_name,
        operation=op,
        region="us-east-1",
        properties_before=before,
        properties_after=after,
    )


def _meta(user: str, intent: str) -> CommitMeta:
    return CommitMeta(
        principal=Principal(user=user), execution_token=f"tok-{intent[:8]}", user_intent=intent
    )


async def seed_async(root: Path, workspace: str = "default") -> None:
    store = StateStore(LocalObjectStore(root), workspace)
    steps = [
        (_change(BUCKET, "AWS::S3::Bucket", "create", None, BUCKET_V1), "alice", "store logs"),
        (_change(QUEUE, "AWS::SQS::Queue", "create", None, QUEUE_PROPS), "bob", "queue jobs"),
        (_change(BUCKET, "AWS::S3::Bucket", "update", BUCKET_V1, BUCKET_V2), "bob", "compliance"),
        (_change(QUEUE, "AWS::SQS::Queue", "delete", QUEUE_PROPS, None), "alice", "not needed"),
    ]
    for change, user, intent in steps:
        await store.commit([change], _meta(user, intent))


def seed(root: Path, workspace: str = "default") -> Path:
    asyncio.run(seed_async(root, workspace))
    return root
