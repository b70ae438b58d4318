"""AWS::IAM::Role: trust policy, description, session duration, path, tags, managed and inline
policies."""

from __future__ import annotations

import json
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


def _policy_text(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document)


def _policy_object(document: Any) -> Any:
    return json.loads(document) if isinstance(document, str) else document


class RoleHandler(Handler):
    type_name = "AWS::IAM::Role"
    service = "iam"
    identifier_property = "RoleName"
    writable = frozenset(
        {
            "AssumeRolePolicyDocument",
            "Description",
            "MaxSessionDuration",
            "Path",
            "Tags",
            "ManagedPolicyArns",
            "Policies",
            "PermissionsBoundary",
        }
    )

    def create(self, model: Model) -> str:
        name = model.get("RoleName") or self.generated_name(64)
        kwargs = drop_none(
            {
                "RoleName": name,
                "AssumeRolePolicyDocument": _policy_text(model["AssumeRolePolicyDocument"]),
                "Description": model.get("Description"),
                "MaxSessionDuration": model.get("MaxSessionDuration"),
                "Path": model.get("Path"),
                "PermissionsBoundary": model.get("PermissionsBoundary"),
            }
        )
        tags = model_tags(model.get("Tags"))
        if tags:
            kwargs["Tags"] = dict_to_tags(tags)
        self.client.create_role(**kwargs)
        self.set_ManagedPolicyArns(name, model.get("ManagedPolicyArns"), None)
        self.set_Policies(name, model.get("Policies"), None)
        return str(name)

    def read(self, identifier: str) -> Model:
        try:
            role = self.client.get_role(RoleName=identifier)["Role"]
            attached = self.client.list_attached_role_policies(RoleName=identifier)
            inline = self.client.list_role_policies(RoleName=identifier)["PolicyNames"]
        except ClientError as exc:
            if is_not_found(exc):
                raise self.not_found(identifier) from exc
            raise
        model: Model = drop_none(
            {
                "RoleName": role["RoleName"],
                "Arn": role["Arn"],
                "RoleId": role["RoleId"],
                "Path": role.get("Path"),
                "AssumeRolePolicyDocument": _policy_object(role["AssumeRolePolicyDocument"]),
                "Description": role.get("Description") or None,
                "MaxSessionDuration": role.get("MaxSessionDuration"),
                "PermissionsBoundary": role.get("PermissionsBoundary", {}).get(
                    "PermissionsBoundaryArn"
                ),
            }
        )
        arns = sorted(p["PolicyArn"] for p in attached.get("AttachedPolicies", []))
        if arns:
            model["ManagedPolicyArns"] = arns
        if inline:
            model["Policies"] = [self._inline(identifier, name) for name in sorted(inline)]
        return with_tags(model, model_tags(role.get("Tags")))

    def delete(self, identifier: str) -> None:
        current = self.read(identifier)
        self.set_ManagedPolicyArns(identifier, None, current.get("ManagedPolicyArns"))
        self.set_Policies(identifier, None, current.get("Policies"))
        self.client.delete_role(RoleName=identifier)

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("list_roles").paginate()
        return [r["RoleName"] for page in pages for r in page["Roles"]]

    # ---- properties ----------------------------------------------------------------------

    def set_AssumeRolePolicyDocument(self, name: str, new: Any, old: Any) -> None:
        self.client.update_assume_role_policy(RoleName=name, PolicyDocument=_policy_text(new))

    def set_Description(self, name: str, new: Any, old: Any) -> None:
        self.client.update_role(RoleName=name, Description=new or "")

    def set_MaxSessionDuration(self, name: str, new: Any, old: Any) -> None:
        # IAM keeps the description when UpdateRole omits it; moto clears it: pass it along.
        role = self.client.get_role(RoleName=name)["Role"]
        kept = {"Description": role["Description"]} if role.get("Description") else {}
        self.client.update_role(RoleName=name, MaxSessionDuration=new or 3600, **kept)

    def set_PermissionsBoundary(self, name: str, new: Any, old: Any) -> None:
        if new:
            self.client.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=new)
        else:
            self.client.delete_role_permissions_boundary(RoleName=name)

    def set_Tags(self, name: str, new: Any, old: Any) -> None:
        sync_tags(
            new,
            old,
            lambda tags: self.client.tag_role(RoleName=name, Tags=dict_to_tags(tags)),
            lambda keys: self.client.untag_role(RoleName=name, TagKeys=keys),
        )

    def set_ManagedPolicyArns(self, name: str, new: Any, old: Any) -> None:
        for arn in sorted(set(old or []) - set(new or [])):
            self.client.detach_role_policy(RoleName=name, PolicyArn=arn)
        for arn in sorted(set(new or []) - set(old or [])):
            self.client.attach_role_policy(RoleName=name, PolicyArn=arn)

    def set_Policies(self, name: str, new: Any, old: Any) -> None:
        wanted = {p["PolicyName"]: p["PolicyDocument"] for p in new or []}
        for policy in old or []:
            if policy["PolicyName"] not in wanted:
                self.client.delete_role_policy(RoleName=name, PolicyName=policy["PolicyName"])
        for policy_name, document in wanted.items():
            self.client.put_role_policy(
                RoleName=name, PolicyName=policy_name, PolicyDocument=_policy_text(document)
            )

    def _inline(self, role: str, policy: str) -> dict[str, Any]:
        answer = self.client.get_role_policy(RoleName=role, PolicyName=policy)
        return {"PolicyName": policy, "PolicyDocument": _policy_object(answer["PolicyDocument"])}
