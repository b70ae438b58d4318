"""AWS::SecretsManager::Secret, identified by its ARN (``Id``). SecretString and
GenerateSecretString are write-only: set, never read back."""

from __future__ import annotations

import json
import secrets
import string
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
    with_tags,
)


def _generated_secret(spec: dict[str, Any]) -> str:
    alphabet = string.ascii_letters + string.digits + "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    excluded = set(spec.get("ExcludeCharacters", ""))
    alphabet = "".join(c for c in alphabet if c not in excluded)
    value = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    template, key = spec.get("SecretStringTemplate"), spec.get("GenerateStringKey")
    if template and key:
        return json.dumps({**json.loads(template), key: value})
    return value


class SecretHandler(Handler):
    type_name = "AWS::SecretsManager::Secret"
    service = "secretsmanager"
    identifier_property = "Id"
    writable = frozenset(
        {"Name", "Description", "KmsKeyId", "SecretString", "GenerateSecretString", "Tags"}
    )

    def create(self, model: Model) -> str:
        value = model.get("SecretString")
        if value is None:
            value = _generated_secret(model.get("GenerateSecretString") or {})
        kwargs = drop_none(
            {
                "Name": model.get("Name") or self.generated_name(256),
                "Description": model.get("Description"),
                "KmsKeyId": model.get("KmsKeyId"),
                "SecretString": value,
            }
        )
        tags = model_tags(model.get("Tags"))
        if tags:
            kwargs["Tags"] = dict_to_tags(tags)
        return str(self.client.create_secret(**kwargs)["ARN"])

    def existing_identifier(self, model: Model) -> str | None:
        name = model.get("Name")
        if not name:
            return None
        try:
            found = self.client.describe_secret(SecretId=name)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return None if found.get("DeletedDate") else str(found["ARN"])

    def read(self, identifier: str) -> Model:
        try:
            secret = self.client.describe_secret(SecretId=identifier)
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise
        if secret.get("DeletedDate"):
            raise self.not_found(identifier)
        model = drop_none(
            {
                "Id": secret["ARN"],
                "Name": secret["Name"],
                "Description": secret.get("Description"),
                "KmsKeyId": secret.get("KmsKeyId"),
            }
        )
        return with_tags(model, model_tags(secret.get("Tags")))

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.delete_secret(SecretId=identifier, ForceDeleteWithoutRecovery=True)

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("list_secrets").paginate()
        return [s["ARN"] for page in pages for s in page["SecretList"] if not s.get("DeletedDate")]

    # ---- properties ----------------------------------------------------------------------

    def set_Description(self, arn: str, new: Any, old: Any) -> None:
        self.client.update_secret(SecretId=arn, Description=new or "")

    def set_KmsKeyId(self, arn: str, new: Any, old: Any) -> None:
        self.client.update_secret(SecretId=arn, KmsKeyId=new or "aws/secretsmanager")

    def set_SecretString(self, arn: str, new: Any, old: Any) -> None:
        if new is not None:
            self.client.put_secret_value(SecretId=arn, SecretString=new)

    def set_GenerateSecretString(self, arn: str, new: Any, old: Any) -> None:
        if new is not None:
            self.client.put_secret_value(SecretId=arn, SecretString=_generated_secret(new))

    def set_Tags(self, arn: str, new: Any, old: Any) -> None:
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_resource(SecretId=arn, Tags=dict_to_tags(tags)),
            lambda keys: self.client.untag_resource(SecretId=arn, TagKeys=keys),
        )
