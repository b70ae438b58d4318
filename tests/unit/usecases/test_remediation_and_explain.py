"""Drift remediation through ``changes.runner``, and the explanations, in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ccstate.backends.memory import MemoryObjectStore
from ccstate.service.changes.runner import ChangeRequest
from ccstate.service.changes.scanning import ScanResult

from tests.unit.usecases.conftest import ALICE, BOB, BUCKET, World, build_world


class FailingScanner:
    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        return ScanResult(
            status="FAILED",
            failed=1,
            failed_checks=[{"id": "CKV_AWS_18", "name": "logging"}],
            scanner="test",
        )


def tags(world: World, identifier: str) -> dict[str, str]:
    found = world.cloud.resources[(BUCKET, identifier)]
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


async def test_the_runner_drives_a_create_through_every_step(world: World) -> None:
    run = await world.runner.run(
        ALICE,
        ChangeRequest(
            operation="create",
            resource_type=BUCKET,
            properties={"BucketName": "demo"},
            user_intent="a bucket for the demo",
        ),
    )

    assert run.done and run.outcome is not None
    assert "a bucket for the demo" in run.explanation.text
    assert run.scan is not None and run.scan.result.status == "SKIPPED"
    entry = (await world.store.history("demo"))[-1]
    assert entry.explanation == run.explanation.text
    assert entry.execution_token == run.outcome.execution_token


async def test_drift_is_fixed_through_the_token_workflow_as_remediate(world: World) -> None:
    await world.runner.run(
        ALICE,
        ChangeRequest(
            operation="create",
            resource_type=BUCKET,
            properties={"BucketName": "demo", "Tags": [{"Key": "env", "Value": "dev"}]},
        ),
    )
    world.cloud.changed_outside(BUCKET, "demo", Tags=[{"Key": "env", "Value": "prod"}])
    report = await world.detector.scan(None)
    assert [d.identifier for d in report.drifted] == ["demo"]

    fixes = await world.remediator.remediate_all(BOB, report.drifted)

    assert [f.status for f in fixes] == ["REMEDIATED"]
    assert tags(world, "demo")["env"] == "dev"
    entry = (await world.store.history("demo"))[-1]
    assert entry.operation == "remediate"
    assert entry.user == "bob"
    assert fixes[0].execution_token == entry.execution_token
    assert (await world.detector.scan(None)).drifted == []


async def test_a_failed_scan_refuses_the_fix_and_changes_nothing(tmp_path: Path) -> None:
    world = build_world(MemoryObjectStore(), tmp_path / "locks", scanner=FailingScanner())
    await world.cloud.create_resource(
        BUCKET, {"BucketName": "demo", "Tags": [{"Key": "env", "Value": "dev"}]}, client_token="x"
    )
    await world.state_tools.import_resource(
        ALICE, resource_type=BUCKET, identifier="demo", user_intent="adopt"
    )
    world.cloud.changed_outside(BUCKET, "demo", Tags=[{"Key": "env", "Value": "prod"}])

    fix = await world.remediator.remediate(ALICE, "demo")

    assert fix.status == "REFUSED"
    assert "FAILED" in fix.reason
    assert "generate_infrastructure_code" not in fix.reason  # the domain names no tool
    assert world.cloud.calls["update_resource"] == 0
    assert tags(world, "demo")["env"] == "prod"


async def test_explanations_say_what_changes_and_why(world: World) -> None:
    flow = world.workflow
    credentials = (await flow.session_info(ALICE)).credentials.token
    generated = await flow.generate(
        ALICE,
        credentials_token=credentials,
        resource_type=BUCKET,
        properties={"BucketName": "demo"},
    )
    created = await flow.explain(
        ALICE, generated_code_token=generated.token.token, user_intent="for the demo"
    )
    assert "demo" in created.text and "for the demo" in created.text
    assert created.operation == "create" and created.token is not None

    await world.cloud.create_resource(BUCKET, {"BucketName": "old"}, client_token="x")
    patch = [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}]
    update = await flow.generate(
        ALICE,
        credentials_token=credentials,
        resource_type=BUCKET,
        operation="update",
        identifier="old",
        patch_document=patch,
    )
    updated = await flow.explain(ALICE, generated_code_token=update.token.token)
    assert "VersioningConfiguration" in updated.text
    assert "Update AWS::S3::Bucket 'old'" in updated.text

    plain = await flow.explain(ALICE, content={"Answer": 42}, context="a number")
    assert plain.token is None and "42" in plain.text
