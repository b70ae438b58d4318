"""AWS::Logs::LogGroup: name, retention, KMS key, class, tags."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from ccstate.sandbox.handlers.base import (
    Handler,
    Model,
    drop_none,
    is_not_found,
    sync_tags,
    with_tags,
)


class LogGroupHandler(Handler):
    type_name = "AWS::Logs::LogGroup"
    service = "logs"
    identifier_property = "LogGroupName"
    writable = frozenset({"RetentionInDays", "KmsKeyId", "LogGroupClass", "Tags"})

    def create(self, model: Model) -> str:
        name = model.get("LogGroupName") or self.generated_name(512)
        kwargs = drop_none(
            {
                "logGroupName": name,
                "kmsKeyId": model.get("KmsKeyId"),
                "logGroupClass": model.get("LogGroupClass"),
            }
        )
        tags = {t["Key"]: t["Value"] for t in model.get("Tags") or []}
        if tags:
            kwargs["tags"] = tags
        self.client.create_log_group(**kwargs)
        if model.get("RetentionInDays"):
            self.set_RetentionInDays(name, model["RetentionInDays"], None)
        return str(name)

    def read(self, identifier: str) -> Model:
        group = self._describe(identifier)
        if group is None:
            raise self.not_found(identifier)
        arn = group["arn"].removesuffix(":*")
        tags = self.client.list_tags_for_resource(resourceArn=arn).get("tags", {})
        model = drop_none(
            {
                "LogGroupName": identifier,
                "Arn": group["arn"],
                "RetentionInDays": group.get("retentionInDays"),
                "KmsKeyId": group.get("kmsKeyId"),
                "LogGroupClass": group.get("logGroupClass"),
            }
        )
        return with_tags(model, tags)

    def delete(self, identifier: str) -> None:
        try:
            self.client.delete_log_group(logGroupName=identifier)
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("describe_log_groups").paginate()
        return [g["logGroupName"] for page in pages for g in page["logGroups"]]

    # ---- properties ----------------------------------------------------------------------

    def set_RetentionInDays(self, name: str, new: Any, old: Any) -> None:
        if new:
            self.client.put_retention_policy(logGroupName=name, retentionInDays=new)
        else:
            self.client.delete_retention_policy(logGroupName=name)

    def set_KmsKeyId(self, name: str, new: Any, old: Any) -> None:
        if new:
            self.client.associate_kms_key(logGroupName=name, kmsKeyId=new)
        else:
            self.client.disassociate_kms_key(logGroupName=name)

    def set_Tags(self, name: str, new: Any, old: Any) -> None:
        arn = self.aws.arn("logs", f"log-group:{name}")
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_resource(resourceArn=arn, tags=tags),
            lambda keys: self.client.untag_resource(resourceArn=arn, tagKeys=keys),
        )

    def _describe(self, name: str) -> dict[str, Any] | None:
        pages = self.client.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=name)
        for page in pages:
            for group in page["logGroups"]:
                if group["logGroupName"] == name:
                    return dict(group)
        return None
