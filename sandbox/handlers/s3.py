"""AWS::S3::Bucket: name, tags, versioning, default encryption, public access block."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from ccstate.sandbox.errors import HandlerError
from ccstate.sandbox.handlers.base import (
    Handler,
    Model,
    dict_to_tags,
    error_code,
    model_tags,
    tags_to_dict,
    with_tags,
)

# The S3 API and the CloudFormation schema name the default-encryption member differently.
_TO_CFN = ("ApplyServerSideEncryptionByDefault", "ServerSideEncryptionByDefault")
_TO_API = (_TO_CFN[1], _TO_CFN[0])


def _rename_default(rule: dict[str, Any], names: tuple[str, str]) -> dict[str, Any]:
    source, target = names
    return {target if key == source else key: value for key, value in rule.items()}


class BucketHandler(Handler):
    type_name = "AWS::S3::Bucket"
    service = "s3"
    identifier_property = "BucketName"
    writable = frozenset(
        {"Tags", "VersioningConfiguration", "BucketEncryption", "PublicAccessBlockConfiguration"}
    )

    def create(self, model: Model) -> str:
        name = model.get("BucketName") or self.generated_name(63, lower=True)
        kwargs: dict[str, Any] = {"Bucket": name}
        if self.aws.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.aws.region}
        self.client.create_bucket(**kwargs)
        for prop in sorted(self.writable & set(model)):
            self.setter(prop)(name, model[prop], None)
        return name

    def read(self, identifier: str) -> Model:
        try:
            self.client.head_bucket(Bucket=identifier)
        except ClientError as exc:
            code = error_code(exc)
            if code in {"404", "NoSuchBucket"}:
                raise self.not_found(identifier) from exc
            if code in {"403", "AccessDenied", "Forbidden"}:
                # HEAD carries no error body: 403 is all S3 says. Refused is not absent.
                raise HandlerError(
                    "AccessDenied",
                    f"Access to {self.type_name} '{identifier}' was denied (HeadBucket 403): "
                    "the credentials are not valid or lack s3:ListBucket.",
                ) from exc
            raise
        model: Model = {"BucketName": identifier, **self._read_only(identifier)}
        versioning = self.client.get_bucket_versioning(Bucket=identifier).get("Status")
        if versioning:
            model["VersioningConfiguration"] = {"Status": versioning}
        encryption = self._optional(self.client.get_bucket_encryption, identifier)
        if encryption:
            rules = encryption["ServerSideEncryptionConfiguration"]["Rules"]
            model["BucketEncryption"] = {
                "ServerSideEncryptionConfiguration": [_rename_default(r, _TO_CFN) for r in rules]
            }
        block = self._optional(self.client.get_public_access_block, identifier)
        if block:
            model["PublicAccessBlockConfiguration"] = block["PublicAccessBlockConfiguration"]
        tagging = self._optional(self.client.get_bucket_tagging, identifier) or {}
        return with_tags(model, tags_to_dict(tagging.get("TagSet")))

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.delete_bucket(Bucket=identifier)

    def list_identifiers(self) -> list[str]:
        return [b["Name"] for b in self.client.list_buckets().get("Buckets", [])]

    # ---- properties ----------------------------------------------------------------------

    def set_Tags(self, name: str, new: Any, old: Any) -> None:
        tags = model_tags(new)
        if tags:
            self.client.put_bucket_tagging(Bucket=name, Tagging={"TagSet": dict_to_tags(tags)})
        else:
            self.client.delete_bucket_tagging(Bucket=name)

    def set_VersioningConfiguration(self, name: str, new: Any, old: Any) -> None:
        status = (new or {}).get("Status", "Suspended")
        self.client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})

    def set_BucketEncryption(self, name: str, new: Any, old: Any) -> None:
        rules = (new or {}).get("ServerSideEncryptionConfiguration")
        if rules:
            api_rules = [_rename_default(r, _TO_API) for r in rules]
            self.client.put_bucket_encryption(
                Bucket=name, ServerSideEncryptionConfiguration={"Rules": api_rules}
            )
        else:
            self.client.delete_bucket_encryption(Bucket=name)

    def set_PublicAccessBlockConfiguration(self, name: str, new: Any, old: Any) -> None:
        if new:
            self.client.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=new)
        else:
            self.client.delete_public_access_block(Bucket=name)

    # ---- helpers -------------------------------------------------------------------------

    def _read_only(self, name: str) -> Model:
        # A bucket lives in one region whichever regional endpoint reads it.
        location = self.client.get_bucket_location(Bucket=name).get("LocationConstraint")
        region = location or "us-east-1"
        return {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
            "DualStackDomainName": f"{name}.s3.dualstack.{region}.amazonaws.com",
            "WebsiteURL": f"http://{name}.s3-website-{region}.amazonaws.com",
        }

    @staticmethod
    def _optional(call: Any, name: str) -> dict[str, Any] | None:
        """The answer of a bucket sub-resource getter, or None when that configuration is unset."""
        try:
            answer: dict[str, Any] = call(Bucket=name)
        except ClientError as exc:
            code = error_code(exc)
            if code.startswith("NoSuch") or code.endswith("NotFoundError"):
                return None
            raise
        return answer
