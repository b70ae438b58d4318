"""Take a workspace lock with a short lease, announce it, then hang (until killed).

argv: bucket prefix table kms_key workspace lease_seconds. Prints the lock as JSON once held.
"""

from __future__ import annotations

import asyncio
import json
import sys

from ccstate.backends.s3 import open_s3_backend_from_options
from ccstate.service.ports import LockScope


async def hold(bucket: str, prefix: str, table: str, kms_key: str, workspace: str, lease: float):
    backend = await open_s3_backend_from_options(
        bucket, prefix, table=table, kms_key=kms_key, region=None, encrypt=None
    )
    lock = await backend.locks.acquire(
        LockScope(workspace), operation="hang", who="worker", lease_seconds=lease, timeout=30
    )
    print(json.dumps(lock.to_dict()), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    bucket, prefix, table, kms_key, workspace, lease = sys.argv[1:7]
    asyncio.run(hold(bucket, prefix, table, kms_key, workspace, float(lease)))
