"""Small builders shared by the store tests."""

from __future__ import annotations

from typing import Any

from ccstate.service.state.model import CommitMeta, Principal, ResourceChange

BUCKET = "AWS::S3::Bucket"


def meta(user: str = "alice", **kw: Any) -> CommitMeta:
    fields = {"explanation": "test", "user_intent": "test", **kw}
    return CommitMeta(principal=Principal(user=user), **fields)


def change(identifier: str, operation: str = "create", **props: Any) -> ResourceChange:
    after = None if operation == "delete" else {"BucketName": identifier, **props}
    return ResourceChange(
        identifier=identifier,
        resource_type=BUCKET,
        operation=operation,
        properties_after=after,
    )
