"""The AWS Labs Cloud Control MCP server's workflow, scripted literally, against ccstate.

``AwsLabsAssistant`` is an MCP client written only from that server's README, instructions and
tool descriptions (awslabs/mcp, src/ccapi-mcp-server): it passes the parameters and reads the
result fields that server documents, nothing of ccstate's own. It runs over a real stdio session
against `ccstate serve` on the sandbox, for S3, SQS, SSM and IAM:

- SECURITY_SCANNING=disabled: create with skip_security_check=True;
- scanning enabled: run_checkov finds issues, the person says "proceed anyway", and
  approve_security_findings turns that into the security_scan_token create_resource takes;
- delete as that server does it: get_resource -> explain(content=..., operation="delete")
  -> delete_resource(confirmed=True);
- every mutation polled with get_resource_request_status until ``is_complete``;
- create_template and get_aws_account_info.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from ccstate.sandbox import Sandbox

from tests.system.mcp.conftest import ServerFactory
from tests.system.mcp.harness import McpSession, aws_kwargs

FAKE_CHECKOV = Path(__file__).with_name("fake_checkov.py")
DEFAULT_TAG_KEYS = {"MANAGED_BY", "MCP_SERVER_SOURCE_CODE", "MCP_SERVER_VERSION"}
MAX_POLLS = 50

# The AWS Labs server's tools: every parameter, and which are required (server.py).
AWSLABS_TOOLS: dict[str, tuple[set[str], set[str]]] = {
    "check_environment_variables": (set(), set()),
    "get_aws_session_info": ({"environment_token"}, {"environment_token"}),
    "get_aws_account_info": (set(), set()),
    "get_resource_schema_information": ({"resource_type", "region"}, {"resource_type"}),
    "list_resources": (
        {"resource_type", "region", "analyze_security", "max_resources_to_analyze"},
        {"resource_type"},
    ),
    "generate_infrastructure_code": (
        {
            "resource_type",
            "properties",
            "identifier",
            "patch_document",
            "region",
            "credentials_token",
        },
        {"resource_type", "credentials_token"},
    ),
    "explain": (
        {"content", "generated_code_token", "context", "operation", "format", "user_intent"},
        set(),
    ),
    "get_resource": (
        {"resource_type", "identifier", "region", "analyze_security"},
        {"resource_type", "identifier"},
    ),
    "create_resource": (
        {
            "resource_type",
            "region",
            "credentials_token",
            "explained_token",
            "security_scan_token",
            "skip_security_check",
        },
        {"resource_type", "credentials_token", "explained_token"},
    ),
    "update_resource": (
        {
            "resource_type",
            "identifier",
            "patch_document",
            "region",
            "credentials_token",
            "explained_token",
            "security_scan_token",
            "skip_security_check",
        },
        {"resource_type", "identifier", "credentials_token", "explained_token"},
    ),
    "delete_resource": (
        {
            "resource_type",
            "identifier",
            "region",
            "credentials_token",
            "confirmed",
            "explained_token",
        },
        {"resource_type", "identifier", "credentials_token", "explained_token"},
    ),
    "get_resource_request_status": ({"request_token", "region"}, {"request_token"}),
    "run_checkov": ({"explained_token", "framework"}, {"explained_token"}),
    "create_template": (
        {
            "template_name",
            "resources",
            "output_format",
            "deletion_policy",
            "update_replace_policy",
            "template_id",
            "region",
        },
        set(),
    ),
    # Named by that server's run_checkov description, defined by neither before ccstate.
    "approve_security_findings": (
        {"security_scan_token", "decision", "accepted_checks", "reason"},
        {"security_scan_token", "decision"},
    ),
}


# --------------------------------------------------------------------------- the client


@dataclass
class AwsLabsAssistant:
    """The AWS Labs README's workflow, reading only the fields that server documents."""

    session: McpSession
    region: str | None = None
    shown: list[str] = field(default_factory=list)  # what the assistant showed the user

    def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        if self.region is not None and tool in REGIONAL_TOOLS:
            arguments.setdefault("region", self.region)
        return self.session.ok(tool, **arguments)

    def start(self) -> tuple[dict[str, Any], str]:
        """STEP 1 and 2 of the instructions: environment, then session -> credentials_token."""
        env = self.call("check_environment_variables")
        info = self.call("get_aws_session_info", environment_token=env["environment_token"])
        self.shown.append(f"account {info['account_id']} in {info['region']}")
        return env, info["credentials_token"]

    def scanning_enabled(self, env: dict[str, Any]) -> bool:
        return env["environment_variables"]["SECURITY_SCANNING"] == "enabled"

    def wait(self, result: dict[str, Any]) -> dict[str, Any]:
        """Poll get_resource_request_status until is_complete."""
        for _ in range(MAX_POLLS):
            if result["is_complete"]:
                return result
            result = self.call("get_resource_request_status", request_token=result["request_token"])
        raise AssertionError(f"never complete: {result}")

    def security_gate(
        self, env: dict[str, Any], explained_token: str, decide: Callable[[dict[str, Any]], str]
    ) -> dict[str, Any]:
        """Step 4: the scan, or the skip when the operator disabled scanning."""
        if not self.scanning_enabled(env):
            self.shown.append("Security scanning is currently DISABLED.")
            return {"skip_security_check": True}
        scan = self.call("run_checkov", explained_token=explained_token)
        shown = self.call("explain", content=scan, context="security scan", operation="analyze")
        self.shown.append(shown["explanation"])
        if scan["scan_status"] == "PASSED":
            return {"security_scan_token": scan["security_scan_token"]}
        failed = [c["check_id"] for c in scan["raw_failed_checks"]]
        approved = self.call(
            "approve_security_findings",
            security_scan_token=scan["security_scan_token"],
            decision=decide(scan),
            accepted_checks=failed,
            reason="the user accepts these findings for a test resource",
        )
        return {"security_scan_token": approved["security_scan_token"]}

    def create(
        self,
        resource_type: str,
        properties: dict[str, Any],
        decide: Callable[[dict[str, Any]], str] = lambda scan: "proceed anyway",
    ) -> dict[str, Any]:
        env, credentials = self.start()
        generated = self.call(
            "generate_infrastructure_code",
            resource_type=resource_type,
            properties=properties,
            credentials_token=credentials,
        )
        explained = self.call(
            "explain",
            content=generated["properties"],
            generated_code_token=generated["generated_code_token"],
            context=f"{resource_type} creation",
            operation="create",
            user_intent="compatibility test",
        )
        self.shown.append(explained["explanation"])
        gate = self.security_gate(env, explained["explained_token"], decide)
        result = self.call(
            "create_resource",
            resource_type=resource_type,
            credentials_token=credentials,
            explained_token=explained["explained_token"],
            **gate,
        )
        if result.get("security_warning"):
            self.shown.append(result["security_warning"])
        return self.wait(result)

    def update(
        self, resource_type: str, identifier: str, patch_document: list[dict[str, Any]]
    ) -> dict[str, Any]:
        env, credentials = self.start()
        generated = self.call(
            "generate_infrastructure_code",
            resource_type=resource_type,
            identifier=identifier,
            patch_document=patch_document,
            credentials_token=credentials,
        )
        explained = self.call(
            "explain",
            generated_code_token=generated["generated_code_token"],
            operation="update",
        )
        self.shown.append(explained["explanation"])
        gate = self.security_gate(env, explained["explained_token"], lambda s: "proceed anyway")
        result = self.call(
            "update_resource",
            resource_type=resource_type,
            identifier=identifier,
            patch_document=patch_document,
            credentials_token=credentials,
            explained_token=explained["explained_token"],
            **gate,
        )
        return self.wait(result)

    def delete(self, resource_type: str, identifier: str) -> dict[str, Any]:
        """get_resource() -> explain(content, operation="delete") -> delete_resource()."""
        _env, credentials = self.start()
        current = self.call("get_resource", resource_type=resource_type, identifier=identifier)
        explained = self.call(
            "explain", content=current, context=f"{resource_type} deletion", operation="delete"
        )
        self.shown.append(explained["explanation"])
        result = self.call(
            "delete_resource",
            resource_type=resource_type,
            identifier=identifier,
            credentials_token=credentials,
            confirmed=True,
            explained_token=explained["explained_token"],
        )
        return self.wait(result)

    def template(self, name: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
        started = self.call("create_template", template_name=name, resources=resources)
        result = started
        for _ in range(MAX_POLLS):
            if result["status"] == "COMPLETED":
                return result
            result = self.call("create_template", template_id=started["template_id"])
        raise AssertionError(f"template never completed: {result}")


REGIONAL_TOOLS = {
    "generate_infrastructure_code",
    "create_resource",
    "update_resource",
    "delete_resource",
    "get_resource",
    "list_resources",
    "get_resource_request_status",
    "get_resource_schema_information",
    "create_template",
}


# --------------------------------------------------------------------------- the resources


@dataclass(frozen=True)
class Kind:
    resource_type: str
    properties: Callable[[str], dict[str, Any]]
    patch: list[dict[str, Any]]
    check_update: Callable[[dict[str, Any]], bool]
    id_name: str  # the primary identifier property (the IaC generator's ResourceIdentifier)


def _role(name: str) -> dict[str, Any]:
    return {
        "RoleName": name,
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        },
    }


KINDS = {
    "s3": Kind(
        "AWS::S3::Bucket",
        lambda name: {"BucketName": name},
        [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}],
        lambda p: p.get("VersioningConfiguration", {}).get("Status") == "Enabled",
        "BucketName",
    ),
    "sqs": Kind(
        "AWS::SQS::Queue",
        lambda name: {"QueueName": name, "VisibilityTimeout": 30},
        [{"op": "replace", "path": "/VisibilityTimeout", "value": 60}],
        lambda p: p.get("VisibilityTimeout") == 60,
        "QueueUrl",
    ),
    "ssm": Kind(
        "AWS::SSM::Parameter",
        lambda name: {"Name": f"/compat/{name}", "Type": "String", "Value": "one"},
        [{"op": "replace", "path": "/Value", "value": "two"}],
        lambda p: p.get("Value") == "two",
        "Name",
    ),
    "iam": Kind(
        "AWS::IAM::Role",
        _role,
        [{"op": "add", "path": "/Description", "value": "updated by the compat test"}],
        lambda p: p.get("Description") == "updated by the compat test",
        "RoleName",
    ),
}


def tag_keys(properties: dict[str, Any]) -> set[str]:
    tags = properties.get("Tags") or []
    if isinstance(tags, dict):
        return set(tags)
    return {t["Key"] for t in tags}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def plain(start_server: ServerFactory, module_dir: Path) -> McpSession:
    """SECURITY_SCANNING=disabled, as the AWS Labs README's second configuration."""
    backend = module_dir / "plain-state"
    backend.mkdir(mode=0o700)
    return start_server(backend, name="plain", SECURITY_SCANNING="disabled")


@pytest.fixture(scope="module")
def checkov(module_dir: Path) -> Path:
    script = module_dir / "checkov"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CHECKOV} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture(scope="module")
def scanning(start_server: ServerFactory, module_dir: Path, checkov: Path) -> McpSession:
    """SECURITY_SCANNING=enabled (the default) with a checkov stand-in."""
    backend = module_dir / "scanning-state"
    backend.mkdir(mode=0o700)
    return start_server(
        backend, name="scanning", SECURITY_SCANNING="enabled", CCSTATE_CHECKOV=str(checkov)
    )


def _lineage(session: McpSession, identifier: str) -> list[dict[str, Any]]:
    return session.ok("show_resource_history", identifier=identifier)["entries"]


# --------------------------------------------------------------------------- the contract


def test_every_awslabs_tool_takes_its_parameters(plain: McpSession) -> None:
    tools = {t.name: t for t in plain.list_tools()}
    for name, (parameters, required) in AWSLABS_TOOLS.items():
        assert name in tools, f"{name} is missing"
        schema = tools[name].input_schema
        assert parameters <= set(schema.get("properties", {})), name
        # An AWS Labs client passes only what that server requires.
        assert set(schema.get("required", [])) <= required, name


def test_every_tool_declares_an_output_schema(plain: McpSession) -> None:
    missing = [t.name for t in plain.list_tools() if not t.output_schema]
    assert missing == []


def test_tools_that_write_token_records_do_not_claim_to_be_read_only(plain: McpSession) -> None:
    tools = {t.name: t for t in plain.list_tools()}
    for name in ("generate_infrastructure_code", "explain", "run_checkov"):
        hints = tools[name].annotations
        assert hints is None or not hints.read_only_hint, name
        assert hints is not None and hints.destructive_hint is False, name


@pytest.mark.parametrize("kind", list(KINDS))
def test_create_update_delete_with_scanning_disabled(
    plain: McpSession, sandbox: Sandbox, kind: str
) -> None:
    spec = KINDS[kind]
    assistant = AwsLabsAssistant(plain)

    created = assistant.create(spec.resource_type, spec.properties(f"compat-plain-{kind}"))

    assert created["status"] == "SUCCESS"
    assert created["resource_type"] == spec.resource_type
    identifier = created["identifier"]
    assert any("DISABLED" in shown for shown in assistant.shown)
    read = assistant.call("get_resource", resource_type=spec.resource_type, identifier=identifier)
    assert read["identifier"] == identifier
    assert tag_keys(read["properties"]) >= DEFAULT_TAG_KEYS

    updated = assistant.update(spec.resource_type, identifier, spec.patch)
    assert updated["status"] == "SUCCESS"
    read = assistant.call("get_resource", resource_type=spec.resource_type, identifier=identifier)
    assert spec.check_update(read["properties"])

    deleted = assistant.delete(spec.resource_type, identifier)
    assert deleted["status"] == "SUCCESS"
    gone = plain.call("get_resource", resource_type=spec.resource_type, identifier=identifier)
    assert not gone.ok

    lineage = _lineage(plain, identifier)
    assert [e["operation"] for e in lineage] == ["create", "update", "delete"]
    for entry in lineage[:2]:
        assert "skipped by caller" in entry["checkov_results"]["summary"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_create_with_findings_approved_by_the_person(scanning: McpSession, kind: str) -> None:
    spec = KINDS[kind]
    assistant = AwsLabsAssistant(scanning)

    created = assistant.create(spec.resource_type, spec.properties(f"compat-scan-{kind}"))

    assert created["status"] == "SUCCESS"
    assert any("ISSUES FOUND" in s or "FAILED" in s for s in assistant.shown)
    entry = _lineage(scanning, created["identifier"])[0]
    results = entry["checkov_results"]
    assert results["failed"] >= 1
    assert results["passed"] >= 0
    accepted = results["accepted_findings"]
    assert accepted["checks"] == [c["id"] for c in results["failed_checks"]]
    assert accepted["reason"] == "the user accepts these findings for a test resource"
    assert accepted["accepted_by"]


def test_skip_security_check_is_refused_when_the_operator_enabled_scanning(
    scanning: McpSession, sandbox: Sandbox
) -> None:
    env = scanning.ok("check_environment_variables")
    creds = scanning.ok("get_aws_session_info", environment_token=env["environment_token"])
    credentials = creds["credentials_token"]
    generated = scanning.ok(
        "generate_infrastructure_code",
        resource_type="AWS::S3::Bucket",
        properties={"BucketName": "compat-not-skipped"},
        credentials_token=credentials,
    )
    explained = scanning.ok("explain", generated_code_token=generated["generated_code_token"])

    refused = scanning.call(
        "create_resource",
        resource_type="AWS::S3::Bucket",
        credentials_token=credentials,
        explained_token=explained["explained_token"],
        skip_security_check=True,
    )

    assert refused.error == "token_error"
    assert "SECURITY_SCANNING" in refused["message"]
    assert "run_checkov" in refused["next_step"]
    buckets = boto3.client("s3", **aws_kwargs(sandbox.env())).list_buckets()["Buckets"]
    assert "compat-not-skipped" not in [b["Name"] for b in buckets]


def _scanned(session: McpSession, resource_type: str, properties: dict[str, Any]) -> tuple:
    credentials = session.credentials()
    generated = session.ok(
        "generate_infrastructure_code",
        resource_type=resource_type,
        properties=properties,
        credentials_token=credentials,
    )
    explained = session.ok("explain", generated_code_token=generated["generated_code_token"])
    scan = session.ok("run_checkov", explained_token=explained["explained_token"])
    return credentials, explained["explained_token"], scan


def test_a_failed_scan_token_alone_authorizes_nothing(scanning: McpSession) -> None:
    credentials, explained, scan = _scanned(
        scanning, "AWS::S3::Bucket", {"BucketName": "compat-unapproved"}
    )
    assert scan["scan_status"] == "FAILED"
    assert scan["raw_failed_checks"][0]["check_id"] == "CKV_AWS_21"

    refused = scanning.call(
        "create_resource",
        resource_type="AWS::S3::Bucket",
        credentials_token=credentials,
        explained_token=explained,
        security_scan_token=scan["security_scan_token"],
    )

    assert refused.error == "token_error"
    assert "approve_security_findings" in refused["next_step"]


def test_an_approval_names_every_failed_check(scanning: McpSession) -> None:
    _credentials, _explained, scan = _scanned(
        scanning, "AWS::IAM::Role", {**_role("compat-partial"), "Description": "x"}
    )
    assert scan["scan_status"] == "FAILED"

    refused = scanning.call(
        "approve_security_findings",
        security_scan_token=scan["security_scan_token"],
        decision="proceed anyway",
        accepted_checks=[],
        reason="not enough",
    )

    assert refused.error == "invalid_input"
    assert "CKV_AWS_61" in refused["message"]


def test_a_person_who_says_fix_or_cancel_gets_no_token(scanning: McpSession) -> None:
    _credentials, _explained, scan = _scanned(
        scanning, "AWS::S3::Bucket", {"BucketName": "compat-cancelled"}
    )

    answer = scanning.ok(
        "approve_security_findings",
        security_scan_token=scan["security_scan_token"],
        decision="cancel",
    )

    assert "security_scan_token" not in answer
    again = scanning.call(
        "approve_security_findings",
        security_scan_token=scan["security_scan_token"],
        decision="proceed anyway",
        accepted_checks=["CKV_AWS_21"],
        reason="changed my mind",
    )
    assert again.error == "token_error"


def test_critical_findings_stay_blocked(scanning: McpSession) -> None:
    role = _role("compat-anyone")
    role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = "*"
    _credentials, _explained, scan = _scanned(scanning, "AWS::IAM::Role", role)
    failed = [c["check_id"] for c in scan["raw_failed_checks"]]
    assert "CKV_AWS_60" in failed

    refused = scanning.call(
        "approve_security_findings",
        security_scan_token=scan["security_scan_token"],
        decision="proceed anyway",
        accepted_checks=failed,
        reason="I really want to",
    )

    assert not refused.ok
    assert refused.error == "policy_denied"
    assert "CKV_AWS_60" in refused["message"]
    assert "accept_critical_findings" in refused["next_step"]


def test_a_delete_without_its_explanation_asks_for_the_explanation(plain: McpSession) -> None:
    created = AwsLabsAssistant(plain).create("AWS::SQS::Queue", {"QueueName": "compat-unexplained"})

    refused = plain.call(
        "delete_resource",
        resource_type="AWS::SQS::Queue",
        identifier=created["identifier"],
        credentials_token=plain.credentials(),
        explained_token="",
        confirmed=True,
    )

    assert refused.check == "explained_missing"
    assert "scan" not in refused["message"]
    assert "explain" in refused["next_step"]
    assert 'operation="delete"' in refused["next_step"]


def test_request_status_answers_both_field_sets(plain: McpSession) -> None:
    created = AwsLabsAssistant(plain).create("AWS::SQS::Queue", {"QueueName": "compat-status"})

    status = plain.ok("get_resource_request_status", request_token=created["request_token"])

    assert status["status"] == "SUCCESS"
    assert status["is_complete"] is True
    assert status["operation_status"] == "SUCCESS"
    assert status["is_terminal"] is True
    assert status["resource_type"] == status["type_name"] == "AWS::SQS::Queue"
    assert status["identifier"] == created["identifier"]


def test_schema_information_answers_both_shapes(plain: McpSession) -> None:
    info = plain.ok("get_resource_schema_information", resource_type="AWS::S3::Bucket")

    assert info["typeName"] == "AWS::S3::Bucket"
    assert "BucketName" in info["properties"]
    assert info["primaryIdentifier"] == ["/properties/BucketName"]
    assert info["schema"]["typeName"] == "AWS::S3::Bucket"


def test_list_resources_returns_every_page(plain: McpSession, sandbox: Sandbox) -> None:
    sqs = boto3.client("sqs", **aws_kwargs(sandbox.env()))
    urls = {sqs.create_queue(QueueName=f"compat-many-{i:03d}")["QueueUrl"] for i in range(120)}

    listed = plain.ok("list_resources", resource_type="AWS::SQS::Queue")

    assert urls <= set(listed["resources"])
    assert not listed.get("next_token")


def test_list_resources_bounds_a_huge_list_with_a_next_token(
    plain: McpSession, sandbox: Sandbox
) -> None:
    sqs = boto3.client("sqs", **aws_kwargs(sandbox.env()))
    for i in range(5):
        sqs.create_queue(QueueName=f"compat-bounded-{i}")

    first = plain.ok("list_resources", resource_type="AWS::SQS::Queue", max_results=3)
    rest = plain.ok(
        "list_resources", resource_type="AWS::SQS::Queue", next_token=first["next_token"]
    )

    assert len(first["resources"]) == 3
    assert first["next_token"]
    assert not set(first["resources"]) & set(rest["resources"])


def test_list_resources_analyzes_security_when_asked(
    scanning: McpSession, sandbox: Sandbox
) -> None:
    s3 = boto3.client("s3", **aws_kwargs(sandbox.env()))
    for name in ("compat-analyzed-a", "compat-analyzed-b", "compat-analyzed-c"):
        s3.create_bucket(Bucket=name)

    listed = scanning.ok(
        "list_resources",
        resource_type="AWS::S3::Bucket",
        analyze_security=True,
        max_resources_to_analyze=2,
    )

    analysis = listed["security_analysis"]
    assert analysis["analyzed_resources"] == 2
    for result in analysis["results"]:
        assert result["identifier"] in listed["resources"]
        assert result["analysis"]["scan_status"] in {"PASSED", "FAILED"}


def test_get_resource_analyzes_security_when_asked(scanning: McpSession, sandbox: Sandbox) -> None:
    boto3.client("s3", **aws_kwargs(sandbox.env())).create_bucket(Bucket="compat-read-scan")

    read = scanning.ok(
        "get_resource",
        resource_type="AWS::S3::Bucket",
        identifier="compat-read-scan",
        analyze_security=True,
    )

    assert read["security_analysis"]["scan_status"] == "FAILED"
    assert read["security_analysis"]["raw_failed_checks"][0]["check_id"] == "CKV_AWS_21"


def test_account_info_in_one_call(plain: McpSession, sandbox: Sandbox) -> None:
    info = plain.ok("get_aws_account_info")

    assert info["account_id"]
    assert info["region"] == sandbox.env()["AWS_REGION"]
    assert info["readonly_mode"] is False
    assert "using_env_vars" in info
    assert "profile" in info


def test_create_template_for_created_resources(plain: McpSession) -> None:
    assistant = AwsLabsAssistant(plain)
    bucket = assistant.create("AWS::S3::Bucket", {"BucketName": "compat-template-bucket"})
    queue = assistant.create(
        "AWS::SQS::Queue", {"QueueName": "compat-template-queue", "VisibilityTimeout": 45}
    )

    done = assistant.template(
        "compat-template",
        [
            {
                "ResourceType": "AWS::S3::Bucket",
                "ResourceIdentifier": {"BucketName": bucket["identifier"]},
            },
            {
                "ResourceType": "AWS::SQS::Queue",
                "ResourceIdentifier": {"QueueUrl": queue["identifier"]},
            },
        ],
    )

    template = yaml.safe_load(done["template"])
    resources = list(template["Resources"].values())
    assert {r["Type"] for r in resources} == {"AWS::S3::Bucket", "AWS::SQS::Queue"}
    assert all(r["DeletionPolicy"] == "RETAIN" for r in resources)
    queue_props = next(r for r in resources if r["Type"] == "AWS::SQS::Queue")["Properties"]
    assert queue_props["VisibilityTimeout"] == 45
    assert "Arn" not in queue_props  # read-only: AWS sets it
    bucket_props = next(r for r in resources if r["Type"] == "AWS::S3::Bucket")["Properties"]
    assert bucket_props["BucketName"] == "compat-template-bucket"
    assert "Arn" not in bucket_props


def test_mutations_run_in_the_region_asked_for(plain: McpSession, sandbox: Sandbox) -> None:
    other = "us-west-2"
    assert sandbox.env()["AWS_REGION"] != other
    assistant = AwsLabsAssistant(plain, region=other)

    created = assistant.create("AWS::SQS::Queue", {"QueueName": "compat-west"})

    url = created["identifier"]
    west = boto3.client("sqs", **{**aws_kwargs(sandbox.env()), "region_name": other})
    home = boto3.client("sqs", **aws_kwargs(sandbox.env()))
    assert url in west.list_queues(QueueNamePrefix="compat-west").get("QueueUrls", [])
    assert not home.list_queues(QueueNamePrefix="compat-west").get("QueueUrls")
    assert plain.ok("load_state", identifier=url)["resource"]["region"] == other
    drift = plain.ok("detect_drift", identifier=url)
    assert drift["in_sync"] == [url], drift  # read in its own region, not the server's

    assistant.update(
        "AWS::SQS::Queue", url, [{"op": "replace", "path": "/VisibilityTimeout", "value": 90}]
    )
    assert (
        west.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"][
            "VisibilityTimeout"
        ]
        == "90"
    )
    assistant.delete("AWS::SQS::Queue", url)
    assert not west.list_queues(QueueNamePrefix="compat-west").get("QueueUrls")


def test_a_token_prepared_for_one_region_is_refused_in_another(plain: McpSession) -> None:
    env = plain.ok("check_environment_variables")
    credentials = plain.ok("get_aws_session_info", environment_token=env["environment_token"])[
        "credentials_token"
    ]
    generated = plain.ok(
        "generate_infrastructure_code",
        resource_type="AWS::SQS::Queue",
        properties={"QueueName": "compat-region-bound"},
        credentials_token=credentials,
        region="us-west-2",
    )
    explained = plain.ok("explain", generated_code_token=generated["generated_code_token"])

    refused = plain.call(
        "create_resource",
        resource_type="AWS::SQS::Queue",
        credentials_token=credentials,
        explained_token=explained["explained_token"],
        skip_security_check=True,
        region="eu-west-1",
    )

    assert refused.error == "token_error"
    assert "us-west-2" in refused["message"]


def test_a_resource_deleted_outside_ccstate_is_forgotten_with_a_reason(
    plain: McpSession, sandbox: Sandbox
) -> None:
    created = AwsLabsAssistant(plain).create("AWS::SQS::Queue", {"QueueName": "compat-gone"})
    url = created["identifier"]
    boto3.client("sqs", **aws_kwargs(sandbox.env())).delete_queue(QueueUrl=url)
    drift = plain.ok("detect_drift", identifier=url)
    assert "forget_resource" in drift["next_step"]

    forgotten = plain.ok("forget_resource", identifier=url, reason="deleted in the console")

    assert forgotten["operation"] == "forget"
    assert not plain.call("load_state", identifier=url).ok
    last = _lineage(plain, url)[-1]
    assert (last["operation"], last["user_intent"]) == ("forget", "deleted in the console")
    assert plain.call("forget_resource", identifier=url, reason="again").error == "not_found"
