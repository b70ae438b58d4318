"""The severity table: defaults, matching, and the rules a user adds."""

from __future__ import annotations

import pytest
from ccstate.service.drift.rules import DEFAULT_RULES, SeverityRule, rules_with
from ccstate.service.errors import InvalidInput


@pytest.mark.parametrize(
    ("resource_type", "path", "severity"),
    [
        ("AWS::S3::Bucket", "/PublicAccessBlockConfiguration/BlockPublicAcls", "critical"),
        ("AWS::S3::Bucket", "/BucketEncryption", "critical"),
        ("AWS::S3::BucketPolicy", "/PolicyDocument/Statement/0/Effect", "critical"),
        ("AWS::EC2::SecurityGroup", "/SecurityGroupIngress/3", "critical"),
        ("AWS::EC2::SecurityGroup", "/SecurityGroupEgress/0/CidrIp", "critical"),
        ("AWS::KMS::Key", "/KeyPolicy", "critical"),
        ("AWS::IAM::Role", "/AssumeRolePolicyDocument/Statement", "critical"),
        ("AWS::IAM::Role", "/Policies/0/PolicyDocument", "critical"),
        ("AWS::SQS::Queue", "/KmsMasterKeyId", "critical"),
        ("AWS::RDS::DBInstance", "/PubliclyAccessible", "critical"),
        ("AWS::S3::Bucket", "/VersioningConfiguration/Status", "high"),
        ("AWS::DynamoDB::Table", "/DeletionProtectionEnabled", "high"),
        ("AWS::SQS::Queue", "/VisibilityTimeout", "medium"),
        ("AWS::SQS::Queue", "/Tags/0/Value", "low"),
    ],
)
def test_default_severities(resource_type: str, path: str, severity: str) -> None:
    assert DEFAULT_RULES.judge(resource_type, path).severity == severity


def test_critical_paths_report_additions_and_others_do_not() -> None:
    assert DEFAULT_RULES.judge("AWS::S3::Bucket", "/BucketEncryption").reports_added
    assert not DEFAULT_RULES.judge("AWS::SQS::Queue", "/VisibilityTimeout").reports_added
    assert DEFAULT_RULES.judge("AWS::SQS::Queue", "/Labels", is_tag=True).reports_added


def test_user_rules_override_defaults() -> None:
    rules = rules_with(
        [
            {
                "resource_type": "AWS::S3::*",
                "path": "/BucketEncryption",
                "severity": "low",
                "report_added": False,
            }
        ]
    )
    verdict = rules.judge("AWS::S3::Bucket", "/BucketEncryption/X")
    assert (verdict.severity, verdict.reports_added) == ("low", False)
    assert rules.judge("AWS::SQS::Queue", "/KmsMasterKeyId").severity == "critical"


def test_double_star_matches_at_any_depth() -> None:
    rule = SeverityRule.from_dict({"path": "**/Secretish", "severity": "high"})
    assert rule.matches("AWS::X::Y", "/Secretish", ["Secretish"])
    assert rule.matches("AWS::X::Y", "/A/0/Secretish/B", ["A", "0", "Secretish", "B"])
    assert not rule.matches("AWS::X::Y", "/A/Other", ["A", "Other"])


@pytest.mark.parametrize(
    "bad",
    [
        {"path": "/A", "severity": "urgent"},
        {"path": "A", "severity": "low"},
        {"severity": "low"},
        {"path": "/A", "regex": "x", "severity": "low"},
        {"regex": "(", "severity": "low"},
        {"path": "/A", "severity": "low", "colour": "red"},
        {"path": "/A", "severity": "low", "report_added": "yes"},
        "not a dict",
    ],
)
def test_bad_rules_are_refused_with_a_next_step(bad: object) -> None:
    with pytest.raises(InvalidInput) as info:
        rules_with([bad])  # type: ignore[list-item]
    assert info.value.next_step
