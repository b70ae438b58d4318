"""AWS::KMS::Key. Deleting schedules deletion (PendingWindowInDays, default 30), after which
the key reads as not found, as in CloudFormation."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError
from ccstate.sandbox.handlers.base import (
    Handler,
    Model,
    drop_none,
    is_not_found,
    sync_tags,
    tags_to_dict,
    with_tags,
)

_GONE = frozenset({"PendingDeletion", "PendingReplicaDeletion"})


class KeyHandler(Handler):
    type_name = "AWS::KMS::Key"
    service = "kms"
    identifier_property = "KeyId"
    writable = frozenset(
        {
            "Description",
            "Enabled",
            "EnableKeyRotation",
            "KeyPolicy",
            "KeySpec",
            "KeyUsage",
            "MultiRegion",
            "Origin",
            "PendingWindowInDays",
            "Tags",
        }
    )

    def create(self, model: Model) -> str:
        kwargs = drop_none(
            {
                "Description": model.get("Description"),
                "KeySpec": model.get("KeySpec"),
                "KeyUsage": model.get("KeyUsage"),
                "MultiRegion": model.get("MultiRegion"),
                "Origin": model.get("Origin"),
                "Policy": _text(model.get("KeyPolicy")),
            }
        )
        tags = tags_to_dict(model.get("Tags"))
        if tags:
            kwargs["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())]
        key_id = str(self.client.create_key(**kwargs)["KeyMetadata"]["KeyId"])
        if model.get("EnableKeyRotation"):
            self.client.enable_key_rotation(KeyId=key_id)
        if model.get("Enabled") is False:
            self.client.disable_key(KeyId=key_id)
        return key_id

    def read(self, identifier: str) -> Model:
        try:
            meta = self.client.describe_key(KeyId=identifier)["KeyMetadata"]
        except ClientError as exc:
            if is_not_found(exc) or "Invalid" in str(exc.response.get("Error", {})):
                raise self.not_found(identifier) from exc
            raise
        if meta.get("KeyState") in _GONE:
            raise self.not_found(identifier)
        key_id = meta["KeyId"]
        policy = self.client.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
        rotation = self.client.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"]
        tags = self.client.list_resource_tags(KeyId=key_id).get("Tags", [])
        model = drop_none(
            {
                "KeyId": key_id,
                "Arn": meta["Arn"],
                "Description": meta.get("Description", ""),
                "Enabled": meta.get("Enabled"),
                "EnableKeyRotation": rotation,
                "KeyPolicy": json.loads(policy),
                "KeySpec": meta.get("KeySpec"),
                "KeyUsage": meta.get("KeyUsage"),
                "MultiRegion": meta.get("MultiRegion", False),
                "Origin": meta.get("Origin"),
            }
        )
        return with_tags(model, tags_to_dict(tags, "TagKey", "TagValue"))

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.schedule_key_deletion(KeyId=identifier, PendingWindowInDays=30)

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("list_keys").paginate()
        found = [k["KeyId"] for page in pages for k in page["Keys"]]
        return [k for k in found if self.exists(k)]

    # ---- properties ----------------------------------------------------------------------

    def set_Description(self, key_id: str, new: Any, old: Any) -> None:
        self.client.update_key_description(KeyId=key_id, Description=new or "")

    def set_Enabled(self, key_id: str, new: Any, old: Any) -> None:
        if new is False:
            self.client.disable_key(KeyId=key_id)
        else:
            self.client.enable_key(KeyId=key_id)

    def set_EnableKeyRotation(self, key_id: str, new: Any, old: Any) -> None:
        if new:
            self.client.enable_key_rotation(KeyId=key_id)
        else:
            self.client.disable_key_rotation(KeyId=key_id)

    def set_KeyPolicy(self, key_id: str, new: Any, old: Any) -> None:
        if new is not None:
            self.client.put_key_policy(KeyId=key_id, PolicyName="default", Policy=_text(new))

    def set_PendingWindowInDays(self, key_id: str, new: Any, old: Any) -> None:
        """Only used when the key is deleted; nothing to change now."""

    def set_Tags(self, key_id: str, new: Any, old: Any) -> None:
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_resource(
                KeyId=key_id,
                Tags=[{"TagKey": k, "TagValue": v} for k, v in sorted(tags.items())],
            ),
            lambda keys: self.client.untag_resource(KeyId=key_id, TagKeys=keys),
        )


def _text(policy: Any) -> str | None:
    if policy is None or isinstance(policy, str):
        return policy
    return json.dumps(policy)
