"""AWS::EC2::VPC and AWS::EC2::SecurityGroup (identified by the group id, ``Id``)."""

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
from ccstate.sandbox.handlers.base import tags_to_dict as _tags


class Ec2Handler(Handler):
    """EC2 tags work the same for every resource: CreateTags / DeleteTags on the id."""

    service = "ec2"

    def set_Tags(self, resource_id: str, new: Any, old: Any) -> None:
        sync_tags(
            new,
            old,
            lambda tags: self.client.create_tags(
                Resources=[resource_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
            ),
            lambda keys: self.client.delete_tags(
                Resources=[resource_id], Tags=[{"Key": k} for k in keys]
            ),
        )

    def tag_on_create(self, resource_type: str, model: Model) -> list[dict[str, Any]]:
        tags = _tags(model.get("Tags"))
        if not tags:
            return []
        items = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        return [{"ResourceType": resource_type, "Tags": items}]

    def _described(self, call: Any, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        try:
            return list(call(**kwargs)[key])
        except ClientError as exc:
            if is_not_found(exc):
                return []
            raise


class VpcHandler(Ec2Handler):
    type_name = "AWS::EC2::VPC"
    identifier_property = "VpcId"
    writable = frozenset(
        {"CidrBlock", "EnableDnsHostnames", "EnableDnsSupport", "InstanceTenancy", "Tags"}
    )

    def create(self, model: Model) -> str:
        kwargs = drop_none(
            {
                "CidrBlock": model.get("CidrBlock"),
                "InstanceTenancy": model.get("InstanceTenancy"),
                "TagSpecifications": self.tag_on_create("vpc", model) or None,
            }
        )
        vpc_id = str(self.client.create_vpc(**kwargs)["Vpc"]["VpcId"])
        for prop in ("EnableDnsSupport", "EnableDnsHostnames"):
            if prop in model:
                self.setter(prop)(vpc_id, model[prop], None)
        return vpc_id

    def read(self, identifier: str) -> Model:
        vpcs = self._described(self.client.describe_vpcs, "Vpcs", VpcIds=[identifier])
        if not vpcs:
            raise self.not_found(identifier)
        vpc = vpcs[0]
        model: Model = {
            "VpcId": vpc["VpcId"],
            "CidrBlock": vpc["CidrBlock"],
            "InstanceTenancy": vpc.get("InstanceTenancy", "default"),
            "EnableDnsSupport": self._attribute(identifier, "enableDnsSupport"),
            "EnableDnsHostnames": self._attribute(identifier, "enableDnsHostnames"),
            "CidrBlockAssociations": [
                a["AssociationId"] for a in vpc.get("CidrBlockAssociationSet", [])
            ],
            "Ipv6CidrBlocks": [
                a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", [])
            ],
            **self._defaults(identifier),
        }
        return with_tags(model, _tags(vpc.get("Tags")))

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.delete_vpc(VpcId=identifier)

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("describe_vpcs").paginate()
        return [v["VpcId"] for page in pages for v in page["Vpcs"]]

    def set_EnableDnsSupport(self, vpc_id: str, new: Any, old: Any) -> None:
        value = True if new is None else bool(new)
        self.client.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": value})

    def set_EnableDnsHostnames(self, vpc_id: str, new: Any, old: Any) -> None:
        self.client.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": bool(new)})

    def set_InstanceTenancy(self, vpc_id: str, new: Any, old: Any) -> None:
        self.client.modify_vpc_tenancy(VpcId=vpc_id, InstanceTenancy=new or "default")

    def _attribute(self, vpc_id: str, name: str) -> bool:
        answer = self.client.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)
        key = name[0].upper() + name[1:]
        return bool(answer[key]["Value"])

    def _defaults(self, vpc_id: str) -> dict[str, str]:
        vpc_filter = [{"Name": "vpc-id", "Values": [vpc_id]}]
        acls = self.client.describe_network_acls(
            Filters=[*vpc_filter, {"Name": "default", "Values": ["true"]}]
        )["NetworkAcls"]
        groups = self.client.describe_security_groups(
            Filters=[*vpc_filter, {"Name": "group-name", "Values": ["default"]}]
        )["SecurityGroups"]
        return drop_none(
            {
                "DefaultNetworkAcl": acls[0]["NetworkAclId"] if acls else None,
                "DefaultSecurityGroup": groups[0]["GroupId"] if groups else None,
            }
        )


# CloudFormation rule shape <-> EC2 IpPermission (one CIDR or group per rule).
_SOURCES = (
    ("CidrIp", "IpRanges", "CidrIp"),
    ("CidrIpv6", "Ipv6Ranges", "CidrIpv6"),
    ("SourcePrefixListId", "PrefixListIds", "PrefixListId"),
    ("DestinationPrefixListId", "PrefixListIds", "PrefixListId"),
    ("SourceSecurityGroupId", "UserIdGroupPairs", "GroupId"),
    ("DestinationSecurityGroupId", "UserIdGroupPairs", "GroupId"),
)


def _to_permission(rule: dict[str, Any]) -> dict[str, Any]:
    protocol = str(rule.get("IpProtocol", "-1"))
    permission: dict[str, Any] = {"IpProtocol": protocol}
    if protocol not in ("-1", "all"):
        permission["FromPort"] = int(rule.get("FromPort", -1))
        permission["ToPort"] = int(rule.get("ToPort", -1))
    for prop, list_key, item_key in _SOURCES:
        if prop in rule:
            item = drop_none({item_key: rule[prop], "Description": rule.get("Description")})
            permission[list_key] = [item]
    return permission


def _to_rules(permission: dict[str, Any], egress: bool) -> list[dict[str, Any]]:
    rules = []
    base: dict[str, Any] = {"IpProtocol": permission["IpProtocol"]}
    if permission["IpProtocol"] != "-1":
        base.update(FromPort=permission.get("FromPort"), ToPort=permission.get("ToPort"))
    for prop, list_key, item_key in _SOURCES:
        if prop.startswith("Destination" if not egress else "Source"):
            continue
        for item in permission.get(list_key, []):
            rules.append(drop_none({**base, prop: item[item_key], **_description(item)}))
    return rules


def _description(item: dict[str, Any]) -> dict[str, Any]:
    return {"Description": item["Description"]} if item.get("Description") else {}


def _rule_key(rule: dict[str, Any]) -> str:
    return repr(sorted(rule.items()))


class SecurityGroupHandler(Ec2Handler):
    type_name = "AWS::EC2::SecurityGroup"
    identifier_property = "Id"
    writable = frozenset(
        {
            "GroupDescription",
            "GroupName",
            "VpcId",
            "SecurityGroupIngress",
            "SecurityGroupEgress",
            "Tags",
        }
    )

    def create(self, model: Model) -> str:
        kwargs = drop_none(
            {
                "GroupName": model.get("GroupName") or self.generated_name(255),
                "Description": model["GroupDescription"],
                "VpcId": model.get("VpcId"),
                "TagSpecifications": self.tag_on_create("security-group", model) or None,
            }
        )
        group_id = str(self.client.create_security_group(**kwargs)["GroupId"])
        if model.get("SecurityGroupIngress"):
            self.set_SecurityGroupIngress(group_id, model["SecurityGroupIngress"], [])
        if "SecurityGroupEgress" in model:
            current = self.read(group_id).get("SecurityGroupEgress", [])
            self.set_SecurityGroupEgress(group_id, model["SecurityGroupEgress"], current)
        return group_id

    def read(self, identifier: str) -> Model:
        groups = self._described(
            self.client.describe_security_groups, "SecurityGroups", GroupIds=[identifier]
        )
        if not groups:
            raise self.not_found(identifier)
        group = groups[0]
        model: Model = drop_none(
            {
                "Id": group["GroupId"],
                "GroupId": group["GroupId"],
                "GroupName": group["GroupName"],
                "GroupDescription": group["Description"],
                "VpcId": group.get("VpcId"),
            }
        )
        for prop, key, egress in (
            ("SecurityGroupIngress", "IpPermissions", False),
            ("SecurityGroupEgress", "IpPermissionsEgress", True),
        ):
            rules = [r for p in group.get(key, []) for r in _to_rules(p, egress)]
            if rules:
                model[prop] = sorted(rules, key=_rule_key)
        return with_tags(model, _tags(group.get("Tags")))

    def delete(self, identifier: str) -> None:
        self.read(identifier)
        self.client.delete_security_group(GroupId=identifier)

    def list_identifiers(self) -> list[str]:
        pages = self.client.get_paginator("describe_security_groups").paginate()
        return [g["GroupId"] for page in pages for g in page["SecurityGroups"]]

    def set_SecurityGroupIngress(self, group_id: str, new: Any, old: Any) -> None:
        self._sync_rules(
            group_id,
            new,
            old,
            self.client.authorize_security_group_ingress,
            self.client.revoke_security_group_ingress,
        )

    def set_SecurityGroupEgress(self, group_id: str, new: Any, old: Any) -> None:
        self._sync_rules(
            group_id,
            new,
            old,
            self.client.authorize_security_group_egress,
            self.client.revoke_security_group_egress,
        )

    @staticmethod
    def _sync_rules(group_id: str, new: Any, old: Any, authorize: Any, revoke: Any) -> None:
        before = {_rule_key(r): r for r in old or []}
        after = {_rule_key(r): r for r in new or []}
        gone = [_to_permission(before[k]) for k in before.keys() - after.keys()]
        added = [_to_permission(after[k]) for k in after.keys() - before.keys()]
        if gone:
            revoke(GroupId=group_id, IpPermissions=gone)
        if added:
            authorize(GroupId=group_id, IpPermissions=added)
