"""A stand-in for the checkov executable (a third-party tool) with a few real-looking rules, one
or two per resource type, printing checkov's ``-o json`` shape:

- CKV_AWS_21 fails when an S3 bucket has no versioning;
- CKV_AWS_27 fails when an SQS queue is not encrypted;
- CKV_AWS_337 fails when an SSM parameter is not a SecureString;
- CKV_AWS_61 fails when an IAM role has no permissions boundary;
- CKV_AWS_60 fails, with severity CRITICAL, when anyone ("*") may assume an IAM role.

Open-source checkov reports no severity; only the critical rule carries one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Rule = tuple[str, str, str | None, Callable[[dict[str, Any]], bool]]


def _versioned(p: dict[str, Any]) -> bool:
    return p.get("VersioningConfiguration", {}).get("Status") == "Enabled"


def _encrypted_queue(p: dict[str, Any]) -> bool:
    return bool(p.get("KmsMasterKeyId") or p.get("SqsManagedSseEnabled"))


def _secure_parameter(p: dict[str, Any]) -> bool:
    return p.get("Type") == "SecureString"


def _bounded_role(p: dict[str, Any]) -> bool:
    return bool(p.get("PermissionsBoundary"))


def _no_wildcard_principal(p: dict[str, Any]) -> bool:
    statements = (p.get("AssumeRolePolicyDocument") or {}).get("Statement", [])
    return not any(s.get("Principal") in ("*", {"AWS": "*"}) for s in statements)


RULES: dict[str, list[Rule]] = {
    "AWS::S3::Bucket": [
        ("CKV_AWS_21", "Ensure the S3 bucket has versioning enabled", None, _versioned)
    ],
    "AWS::SQS::Queue": [
        (
            "CKV_AWS_27",
            "Ensure all data stored in the SQS queue is encrypted",
            None,
            _encrypted_queue,
        )
    ],
    "AWS::SSM::Parameter": [
        ("CKV_AWS_337", "Ensure SSM parameters are using KMS CMK", None, _secure_parameter)
    ],
    "AWS::IAM::Role": [
        ("CKV_AWS_61", "Ensure the IAM role has a permissions boundary", None, _bounded_role),
        (
            "CKV_AWS_60",
            "Ensure IAM role allows only specific principals to assume it",
            "CRITICAL",
            _no_wildcard_principal,
        ),
    ],
}


def main(argv: list[str]) -> int:
    template = json.loads(Path(argv[argv.index("-f") + 1]).read_text())
    resource = template["Resources"]["Resource"]
    properties = resource.get("Properties", {})
    passed, failed = [], []
    for check_id, name, severity, holds in RULES.get(
        resource.get("Type"), RULES["AWS::S3::Bucket"]
    ):
        check = {
            "check_id": check_id,
            "check_name": name,
            "severity": severity,
            "check_result": {"evaluated_keys": ["Properties"]},
        }
        (passed if holds(properties) else failed).append(check)
    summary = {"passed": len(passed), "failed": len(failed), "checkov_version": "stand-in"}
    results = {"passed_checks": passed, "failed_checks": failed}
    print(json.dumps({"check_type": "cloudformation", "results": results, "summary": summary}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
