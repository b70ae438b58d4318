"""AWS::SSM::Parameter (String and StringList; CloudFormation does not create SecureString).

Its Tags property is a map, not a Key/Value list."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from ccstate.sandbox.handlers.base import (
    Handler,
    Model,
    dict_to_tags,
    drop_none,
    is_not_found,
    model_tags,
    sync_tags,
    tags_to_dict,
)


class ParameterHandler(Handler):
    type_name = "AWS::SSM::Parameter"
    service = "ssm"
    identifier_property = "Name"
    writable = frozenset(
        {"Type", "Value", "Description", "AllowedPattern", "DataType", "Tier", "Tags"}
    )
    _put_args = {
        "Type": "Type",
        "Value": "Value",
        "Description": "Description",
        "AllowedPattern": "AllowedPattern",
        "DataType": "DataType",
        "Tier": "Tier",
    }

    def create(self, model: Model) -> str:
        name = model.get("Name") or f"/{self.generated_name(1000)}"
        kwargs = {arg: model[prop] for prop, arg in self._put_args.items() if prop in model}
        tags = model_tags(model.get("Tags"))
        if tags:
            kwargs["Tags"] = dict_to_tags(tags)
        self.client.put_parameter(Name=name, **kwargs)
        return str(name)

    def read(self, identifier: str) -> Model:
        try:
            param = self.client.get_parameter(Name=identifier)["Parameter"]
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise
        tags = self.client.list_tags_for_resource(ResourceType="Parameter", ResourceId=identifier)
        model: Model = drop_none(
            {
                "Name": param["Name"],
                "Arn": param.get("ARN"),
                "Type": param["Type"],
                "Value": param["Value"],
                "DataType": param.get("DataType"),
            }
        )
        found = tags_to_dict(tags.get("TagList"))
        if found:
            model["Tags"] = found
        return model

    def delete(self, identifier: str) -> None:
        try:
            self.client.delete_parameter(Name=identifier)
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("describe_parameters").paginate()
        return [p["Name"] for page in pages for p in page["Parameters"]]

    def update(self, identifier: str, before: Model, after: Model) -> None:
        """SSM writes all value settings in one PutParameter (Overwrite), tags apart."""
        settings = self._put_args.keys()
        if any(before.get(p) != after.get(p) for p in settings):
            kwargs = {arg: after[p] for p, arg in self._put_args.items() if p in after}
            self.client.put_parameter(Name=identifier, Overwrite=True, **kwargs)
        if before.get("Tags") != after.get("Tags"):
            self.set_Tags(identifier, after.get("Tags"), before.get("Tags"))

    def set_Tags(self, name: str, new: Any, old: Any) -> None:
        sync_tags(
            new,
            old,
            lambda tags: self.client.add_tags_to_resource(
                ResourceType="Parameter", ResourceId=name, Tags=dict_to_tags(tags)
            ),
            lambda keys: self.client.remove_tags_from_resource(
                ResourceType="Parameter", ResourceId=name, TagKeys=keys
            ),
        )
