"""Rollback as an assistant and an operator meet it: ``rollback_resource`` through a real MCP
client session on an in-process server, and ``ccstate rollback``, against the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from ccstate.mcp_server.server import build_server
from ccstate.sandbox import Sandbox
from mcp.client import Client

from ccstate.app import ServerOptions, open_server
from ccstate.cli import main as cli_main

from .conftest import AwsClient, unique

S3 = "AWS::S3::Bucket"


class Assistant:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, **args: Any) -> tuple[bool, dict[str, Any]]:
        result = await self.client.call_tool(tool, args)
        return not result.is_error, dict(result.structured_content or {})

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        ok, data = await self.call(tool, **args)
        assert ok, f"{tool} failed: {json.dumps(data, indent=1)}"
        return data

    async def change(self, **generate: Any) -> dict[str, Any]:
        """generate -> explain -> scan -> create/update, as the tools' instructions say."""
        credentials = (await self.ok("get_aws_session_info"))["credentials_token"]
        generated = await self.ok(
            "generate_infrastructure_code", credentials_token=credentials, **generate
        )
        explained = await self.ok(
            "explain", generated_code_token=generated["generated_code_token"], user_intent="t"
        )
        scan = await self.ok("run_checkov", explained_token=explained["explained_token"])
        tool = "update_resource" if "patch_document" in generate else "create_resource"
        extra = {"identifier": generate["identifier"]} if "identifier" in generate else {}
        return await self.ok(
            tool,
            resource_type=generate["resource_type"],
            credentials_token=credentials,
            explained_token=explained["explained_token"],
            security_scan_token=scan["security_scan_token"],
            **extra,
        )


def tags(team: str) -> list[dict[str, str]]:
    return [{"Key": "team", "Value": team}]


@pytest.fixture
def server_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SECURITY_SCANNING", "disabled")
    monkeypatch.setenv("CCSTATE_USER", "tester")


@asynccontextmanager
async def assistant_on(backend: Path) -> AsyncIterator[Assistant]:
    options = ServerOptions(backend=backend.as_uri(), offline_schemas=True, env=dict(os.environ))
    async with open_server(options) as runtime, Client(build_server(runtime)) as client:
        yield Assistant(client)


async def in_session(backend: Path, body: Any) -> Any:
    """The MCP client's cancel scopes must be entered and left by one task."""

    async def run() -> Any:
        async with assistant_on(backend) as assistant:
            return await body(assistant)

    return await asyncio.create_task(run())


async def test_rollback_resource_plan_then_act_through_mcp(
    server_env: None, tmp_path: Path, aws: AwsClient
) -> None:
    name = unique("mcp")

    async def body(a: Assistant) -> None:
        created = await a.change(
            resource_type=S3, properties={"BucketName": name, "Tags": tags("red")}
        )
        await a.change(
            resource_type=S3,
            identifier=name,
            patch_document=[{"op": "replace", "path": "/Tags", "value": tags("blue")}],
        )
        plan = await a.ok(
            "rollback_resource",
            identifier=name,
            execution_token=created["execution_token"],
            plan_only=True,
        )
        assert plan["action"] == "update"
        assert {p["property"]: p["action"] for p in plan["properties"]}["Tags"] == "patch"
        assert plan["plan_digest"] in plan["next_step"]

        done = await a.ok(
            "rollback_resource",
            identifier=name,
            execution_token=created["execution_token"],
            plan_digest=plan["plan_digest"],
        )
        assert done["status"] == "DONE"
        assert done["rolled_back_to"] == created["execution_token"]
        history = (await a.ok("show_resource_history", identifier=name))["entries"]
        assert history[-1]["operation"] == "rollback"
        assert history[-1]["rolled_back_to"] == created["execution_token"]

        stale_ok, stale = await a.call(
            "rollback_resource",
            identifier=name,
            execution_token=created["execution_token"],
            plan_digest=plan["plan_digest"],
        )
        assert not stale_ok and stale["error"] == "stale_plan"

    await in_session(tmp_path / "state", body)
    tag_set = aws("s3").get_bucket_tagging(Bucket=name)["TagSet"]
    assert {"Key": "team", "Value": "red"} in tag_set


def test_cli_rollback_plan_and_act(
    server_env: None, tmp_path: Path, aws: AwsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = tmp_path / "state"
    name = unique("cli")

    async def body(a: Assistant) -> str:
        created = await a.change(
            resource_type=S3, properties={"BucketName": name, "Tags": tags("red")}
        )
        await a.change(
            resource_type=S3,
            identifier=name,
            patch_document=[{"op": "replace", "path": "/Tags", "value": tags("blue")}],
        )
        return str(created["execution_token"])

    token = asyncio.run(in_session(backend, body))
    base = ["rollback", name, "--to", token, "--backend", backend.as_uri(), "--output", "json"]

    assert cli_main([*base, "--plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["action"] == "update"

    assert cli_main(base) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["status"] == "DONE"
    tag_set = aws("s3").get_bucket_tagging(Bucket=name)["TagSet"]
    assert {"Key": "team", "Value": "red"} in tag_set

    assert cli_main([*base[:3], done["execution_token"], *base[4:], "--before"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["status"] == "DONE"
    tag_set = aws("s3").get_bucket_tagging(Bucket=name)["TagSet"]
    assert {"Key": "team", "Value": "blue"} in tag_set


async def test_analyze_change_impact_and_the_delete_guard_through_mcp(
    server_env: None, tmp_path: Path
) -> None:
    queue = unique("dlq")
    worker = unique("worker")

    async def body(a: Assistant) -> None:
        made = await a.change(resource_type="AWS::SQS::Queue", properties={"QueueName": queue})
        url, arn = made["identifier"], made["properties"]["Arn"]
        redrive = {"deadLetterTargetArn": arn, "maxReceiveCount": 3}
        await a.change(
            resource_type="AWS::SQS::Queue",
            properties={"QueueName": worker, "RedrivePolicy": redrive},
        )
        impact = await a.ok(
            "analyze_change_impact", resource_type="AWS::SQS::Queue", operation="delete",
            identifier=url,
        )  # fmt: skip
        assert impact["risk"] == "critical"
        assert [d["depth"] for d in impact["dependents"]] == [1]

        credentials = (await a.ok("get_aws_session_info"))["credentials_token"]
        generated = await a.ok(
            "generate_infrastructure_code", credentials_token=credentials,
            resource_type="AWS::SQS::Queue", identifier=url, operation="delete",
        )  # fmt: skip
        explained = await a.ok(
            "explain", generated_code_token=generated["generated_code_token"], user_intent="t"
        )
        args = dict(
            resource_type="AWS::SQS::Queue", identifier=url, credentials_token=credentials,
            explained_token=explained["explained_token"], confirmed=True,
        )  # fmt: skip
        ok, refused = await a.call("delete_resource", **args)
        assert not ok and refused["error"] == "has_dependents"
        assert refused["details"]["dependents"] == [impact["dependents"][0]["identifier"]]
        await a.ok("delete_resource", force=True, **args)

    await in_session(tmp_path / "state", body)
