"""AWS::DynamoDB::Table: keys, attributes, billing, throughput, streams, GSIs, tags."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from ccstate.sandbox.handlers.base import (
    Handler,
    Model,
    dict_to_tags,
    is_not_found,
    model_tags,
    sync_tags,
    with_tags,
)

_THROUGHPUT = ("ReadCapacityUnits", "WriteCapacityUnits")


def _throughput(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    return {k: value[k] for k in _THROUGHPUT if k in value}


def _index_model(index: dict[str, Any], billing: str) -> dict[str, Any]:
    out = {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
    throughput = _throughput(index.get("ProvisionedThroughput"))
    if billing == "PROVISIONED" and throughput:
        out["ProvisionedThroughput"] = throughput
    return out


class TableHandler(Handler):
    type_name = "AWS::DynamoDB::Table"
    service = "dynamodb"
    identifier_property = "TableName"
    writable = frozenset(
        {
            "AttributeDefinitions",
            "KeySchema",
            "BillingMode",
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "StreamSpecification",
            "DeletionProtectionEnabled",
            "Tags",
        }
    )

    def create(self, model: Model) -> str:
        name = model.get("TableName") or self.generated_name(255)
        billing = model.get("BillingMode", "PROVISIONED")
        kwargs: dict[str, Any] = {
            "TableName": name,
            "KeySchema": model["KeySchema"],
            "AttributeDefinitions": model.get("AttributeDefinitions", []),
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = _throughput(model.get("ProvisionedThroughput"))
        if model.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = model["GlobalSecondaryIndexes"]
        if model.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **model["StreamSpecification"]}
        if "DeletionProtectionEnabled" in model:
            kwargs["DeletionProtectionEnabled"] = model["DeletionProtectionEnabled"]
        tags = model_tags(model.get("Tags"))
        if tags:
            kwargs["Tags"] = dict_to_tags(tags)
        self.client.create_table(**kwargs)
        return str(name)

    def read(self, identifier: str) -> Model:
        try:
            table = self.client.describe_table(TableName=identifier)["Table"]
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise
        billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        model: Model = {
            "TableName": table["TableName"],
            "Arn": table["TableArn"],
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": table.get("AttributeDefinitions", []),
            "BillingMode": billing,
            "DeletionProtectionEnabled": bool(table.get("DeletionProtectionEnabled", False)),
        }
        if billing == "PROVISIONED":
            model["ProvisionedThroughput"] = _throughput(table.get("ProvisionedThroughput"))
        indexes = table.get("GlobalSecondaryIndexes")
        if indexes:
            model["GlobalSecondaryIndexes"] = [_index_model(i, billing) for i in indexes]
        stream = table.get("StreamSpecification")
        if stream and stream.get("StreamEnabled"):
            model["StreamSpecification"] = {"StreamViewType": stream["StreamViewType"]}
            model["StreamArn"] = table.get("LatestStreamArn")
        tags = self.client.list_tags_of_resource(ResourceArn=table["TableArn"]).get("Tags", [])
        return with_tags(model, model_tags(tags))

    def delete(self, identifier: str) -> None:
        try:
            self.client.delete_table(TableName=identifier)
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("list_tables").paginate()
        return [name for page in pages for name in page["TableNames"]]

    # ---- properties ----------------------------------------------------------------------

    def update(self, identifier: str, before: Model, after: Model) -> None:
        """Billing mode and throughput change together in one UpdateTable."""
        billing = after.get("BillingMode", "PROVISIONED")
        if before.get("BillingMode") != billing or before.get("ProvisionedThroughput") != after.get(
            "ProvisionedThroughput"
        ):
            kwargs: dict[str, Any] = {"TableName": identifier, "BillingMode": billing}
            if billing == "PROVISIONED":
                kwargs["ProvisionedThroughput"] = _throughput(after.get("ProvisionedThroughput"))
            self.client.update_table(**kwargs)
        rest = set(before) | set(after)
        for prop in sorted(rest - {"BillingMode", "ProvisionedThroughput"}):
            if before.get(prop) != after.get(prop):
                self.setter(prop)(identifier, after.get(prop), before.get(prop))

    def set_DeletionProtectionEnabled(self, name: str, new: Any, old: Any) -> None:
        self.client.update_table(TableName=name, DeletionProtectionEnabled=bool(new))

    def set_StreamSpecification(self, name: str, new: Any, old: Any) -> None:
        spec = {"StreamEnabled": True, **new} if new else {"StreamEnabled": False}
        self.client.update_table(TableName=name, StreamSpecification=spec)

    def set_Tags(self, name: str, new: Any, old: Any) -> None:
        arn = self.aws.arn("dynamodb", f"table/{name}")
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_resource(ResourceArn=arn, Tags=dict_to_tags(tags)),
            lambda keys: self.client.untag_resource(ResourceArn=arn, TagKeys=keys),
        )
