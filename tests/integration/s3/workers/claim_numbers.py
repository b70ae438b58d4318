"""Claim the next free number N times under one S3 prefix, as the state store commits do.

argv: bucket prefix table kms_key worker_name count. Prints the numbers claimed as JSON.
The endpoint and credentials come from the environment (AWS_ENDPOINT_URL...).
"""

from __future__ import annotations

import asyncio
import json
import sys

from ccstate.backends.s3 import open_s3_backend_from_options


def key_of(number: int) -> str:
    return f"claims/log/{number:020d}.json"


async def claim(bucket: str, prefix: str, table: str, kms_key: str, name: str, count: int) -> None:
    backend = await open_s3_backend_from_options(
        bucket, prefix, table=table, kms_key=kms_key, region=None, encrypt=None
    )
    claimed: list[int] = []
    try:
        keys = await backend.objects.list_keys("claims/log/")
        candidate = len(keys) + 1
        while len(claimed) < count:
            body = json.dumps({"number": candidate, "by": name}).encode()
            if await backend.objects.put_if_absent(key_of(candidate), body):
                claimed.append(candidate)
            candidate += 1
    finally:
        await backend.close()
    print(json.dumps(claimed))


if __name__ == "__main__":
    bucket, prefix, table, kms_key, name, count = sys.argv[1:7]
    asyncio.run(claim(bucket, prefix, table, kms_key, name, int(count)))
