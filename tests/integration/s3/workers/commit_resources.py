"""Commit N changes to one shared S3 state through StateStore, each under its resource lock.

argv: bucket prefix table kms_key worker_name count. The worker owns the resources
'<worker_name>-<i>' (disjoint from other workers'). Prints the serials it committed as JSON.
Workers with an even number commit ``under_lock`` (a serial and a put, nothing read), the others
catch up and check for conflicts first: both kinds share one log.
The endpoint and credentials come from the environment (AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

import asyncio
import json
import sys

from ccstate.backends.s3 import open_s3_backend_from_options
from ccstate.service.locking import hold_lock
from ccstate.service.ports import LockScope
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange


def change(identifier: str) -> ResourceChange:
    return ResourceChange(
        identifier=identifier,
        resource_type="AWS::S3::Bucket",
        operation="create",
        region="us-east-1",
        properties_after={"BucketName": identifier},
    )


async def commit_all(bucket: str, prefix: str, table: str, kms_key: str, name: str, count: int):
    backend = await open_s3_backend_from_options(
        bucket, prefix, table=table, kms_key=kms_key, region=None, encrypt=None
    )
    store = backend.state_store("default")
    meta = CommitMeta(principal=Principal(user=name), explanation=f"worker {name}")
    serials: list[int] = []
    trusting = int(name.lstrip("w") or 0) % 2 == 0
    try:
        for i in range(count):
            identifier = f"{name}-{i}"
            scope = LockScope("default", identifier)
            async with hold_lock(backend.locks, scope, operation="commit", who=name, timeout=60):
                commit = await store.commit([change(identifier)], meta, under_lock=trusting)
            serials.append(commit.serial)
    finally:
        await backend.close()
    print(json.dumps(serials))


if __name__ == "__main__":
    bucket, prefix, table, kms_key, name, count = sys.argv[1:7]
    asyncio.run(commit_all(bucket, prefix, table, kms_key, name, int(count)))
