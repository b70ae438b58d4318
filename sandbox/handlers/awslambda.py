"""AWS::Lambda::Function (zip packages). ``Code.ZipFile`` is inline source, zipped here into
``index.py`` / ``index.js`` as CloudFormation does. Creating and reading need no Docker; only
invoking the function would."""

from __future__ import annotations

import io
import zipfile
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

# CloudFormation property -> Lambda configuration field, for the plain settings.
_SETTINGS = {
    "Role": "Role",
    "Runtime": "Runtime",
    "Handler": "Handler",
    "Description": "Description",
    "Timeout": "Timeout",
    "MemorySize": "MemorySize",
    "Environment": "Environment",
    "Layers": "Layers",
    "TracingConfig": "TracingConfig",
    "EphemeralStorage": "EphemeralStorage",
}


def _code(code: dict[str, Any], runtime: str) -> dict[str, Any]:
    if "ZipFile" not in code:
        return {k: v for k, v in code.items() if k in ("S3Bucket", "S3Key", "S3ObjectVersion")}
    filename = "index.js" if runtime.startswith("nodejs") else "index.py"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(filename, code["ZipFile"])
    return {"ZipFile": buffer.getvalue()}


def _settings(model: Model) -> dict[str, Any]:
    return {api: model[prop] for prop, api in _SETTINGS.items() if prop in model}


class FunctionHandler(Handler):
    type_name = "AWS::Lambda::Function"
    service = "lambda"
    identifier_property = "FunctionName"
    writable = frozenset({"Code", "Tags", "Architectures", "PackageType", *_SETTINGS})

    def create(self, model: Model) -> str:
        name = model.get("FunctionName") or self.generated_name(64)
        kwargs: dict[str, Any] = {
            "FunctionName": name,
            "Code": _code(model["Code"], model.get("Runtime", "")),
            **_settings(model),
        }
        if "Architectures" in model:
            kwargs["Architectures"] = model["Architectures"]
        if "PackageType" in model:
            kwargs["PackageType"] = model["PackageType"]
        tags = {t["Key"]: t["Value"] for t in model.get("Tags") or []}
        if tags:
            kwargs["Tags"] = tags
        self.client.create_function(**kwargs)
        return str(name)

    def read(self, identifier: str) -> Model:
        try:
            answer = self.client.get_function(FunctionName=identifier)
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise
        config = answer["Configuration"]
        model: Model = drop_none(
            {
                "FunctionName": config["FunctionName"],
                "Arn": config["FunctionArn"],
                "PackageType": config.get("PackageType"),
                "Architectures": config.get("Architectures"),
                **{prop: config.get(api) for prop, api in _SETTINGS.items()},
            }
        )
        env = model.get("Environment")
        if isinstance(env, dict) and not env.get("Variables"):
            del model["Environment"]
        if not model.get("Layers"):
            model.pop("Layers", None)
        tags = {k: v for k, v in (answer.get("Tags") or {}).items() if not k.startswith("aws:")}
        return with_tags(model, tags)

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.delete_function(FunctionName=identifier)

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("list_functions").paginate()
        return [f["FunctionName"] for page in pages for f in page["Functions"]]

    def update(self, identifier: str, before: Model, after: Model) -> None:
        """Plain settings change together in one UpdateFunctionConfiguration."""
        changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
        settings = changed & set(_SETTINGS)
        if settings:
            kwargs = {_SETTINGS[p]: after[p] for p in settings if p in after}
            if "Environment" in settings and "Environment" not in after:
                kwargs["Environment"] = {"Variables": {}}
            self.client.update_function_configuration(FunctionName=identifier, **kwargs)
        for prop in sorted(changed - settings):
            self.setter(prop)(identifier, after.get(prop), before.get(prop))

    def set_Code(self, name: str, new: Any, old: Any) -> None:
        if new:
            runtime = self.read(name).get("Runtime", "")
            self.client.update_function_code(FunctionName=name, **_code(new, runtime))

    def set_Tags(self, name: str, new: Any, old: Any) -> None:
        arn = self.read(name)["Arn"]
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_resource(Resource=arn, Tags=tags),
            lambda keys: self.client.untag_resource(Resource=arn, TagKeys=keys),
        )
