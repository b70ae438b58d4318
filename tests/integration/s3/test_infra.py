"""The CloudFormation template passes cfn-lint and matches what the code expects."""

from __future__ import annotations

from pathlib import Path

from ccstate.backends.bootstrap import LIFECYCLE_RULE_ID, TLS_SID, TTL_ATTRIBUTE
from cfnlint.api import lint_file
from cfnlint.decode import decode_str

TEMPLATE = Path(__file__).resolve().parents[3] / "infra" / "state-backend.yaml"


def test_template_passes_cfn_lint() -> None:
    matches = lint_file(TEMPLATE)
    assert [str(match) for match in matches] == []


def test_template_declares_the_layout_the_backend_uses() -> None:
    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    resources = template["Resources"]
    table = resources["LockTable"]["Properties"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert table["TimeToLiveSpecification"]["AttributeName"] == TTL_ATTRIBUTE
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    bucket = resources["StateBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert LIFECYCLE_RULE_ID in [rule["Id"] for rule in bucket["LifecycleConfiguration"]["Rules"]]
    policy = resources["StateBucketPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"][0]["Sid"] == TLS_SID
    assert resources["StateKey"]["Properties"]["EnableKeyRotation"] is True
