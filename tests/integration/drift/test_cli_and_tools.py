"""Drift as an assistant and an operator meet it: the MCP tools (in process, through a real MCP
client), the watch loop, and ``ccstate drift`` against the sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ccstate.mcp_server.runtime import Runtime
from ccstate.mcp_server.server import build_server
from ccstate.mcp_server.tools_drift import drift_parts
from ccstate.sandbox import Sandbox
from ccstate.service.drift.monitor import DriftRun, run_drift_monitor
from ccstate.service.state.model import CommitMeta, Principal
from mcp.client import Client

from ccstate.app import ServerOptions, open_server
from ccstate.cli import main as cli_main
from tests.integration.drift.conftest import AwsClient, unique

S3 = "AWS::S3::Bucket"


@dataclass
class Assistant:
    """An MCP client session on an in-process server, plus the runtime behind it."""

    client: Client
    runtime: Runtime

    async def call(self, tool: str, **args: Any) -> tuple[bool, dict[str, Any]]:
        result = await self.client.call_tool(tool, args)
        return not result.is_error, dict(result.structured_content or {})

    async def ok(self, tool: str, **args: Any) -> dict[str, Any]:
        ok, data = await self.call(tool, **args)
        assert ok, f"{tool} failed: {json.dumps(data, indent=1)}"
        return data

    async def create_bucket(self, name: str, tags: dict[str, str]) -> str:
        credentials = (await self.ok("get_aws_session_info"))["credentials_token"]
        generated = await self.ok(
            "generate_infrastructure_code",
            credentials_token=credentials,
            resource_type=S3,
            properties={"BucketName": name, "Tags": [{"Key": k, "Value": tags[k]} for k in tags]},
        )
        explained = await self.ok(
            "explain", generated_code_token=generated["generated_code_token"], user_intent="test"
        )
        scan = await self.ok("run_checkov", explained_token=explained["explained_token"])
        created = await self.ok(
            "create_resource",
            resource_type=S3,
            credentials_token=credentials,
            explained_token=explained["explained_token"],
            security_scan_token=scan["security_scan_token"],
        )
        return str(created["identifier"])

    async def history(self, identifier: str) -> list[dict[str, Any]]:
        return list((await self.ok("show_resource_history", identifier=identifier))["entries"])


@pytest.fixture
def server_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SECURITY_SCANNING", "disabled")
    monkeypatch.setenv("CCSTATE_USER", "tester")


@asynccontextmanager
async def assistant_on(backend: Path, *, readonly: bool = False) -> AsyncIterator[Assistant]:
    options = ServerOptions(
        backend=backend.as_uri(), readonly=readonly, offline_schemas=True, env=dict(os.environ)
    )
    async with open_server(options) as runtime, Client(build_server(runtime)) as client:
        yield Assistant(client, runtime)


@pytest.fixture
async def assistant(server_env: None, tmp_path: Path) -> AsyncIterator[Assistant]:
    """The session lives in a task of its own: the MCP client's cancel scopes must be entered
    and left by the same task, and pytest-asyncio tears fixtures down in another."""
    ready: asyncio.Future[Assistant] = asyncio.get_running_loop().create_future()
    done = asyncio.Event()

    async def hold() -> None:
        async with assistant_on(tmp_path / "state") as session:
            ready.set_result(session)
            await done.wait()

    task = asyncio.create_task(hold())
    yield await asyncio.wait_for(asyncio.shield(ready), timeout=60)
    done.set()
    await task


def tag_bucket(aws: AwsClient, bucket: str, tags: dict[str, str]) -> None:
    tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
    aws("s3").put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tag_set})


def cloud_tags(aws: AwsClient, bucket: str) -> dict[str, str]:
    tag_set = aws("s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
    return {t["Key"]: t["Value"] for t in tag_set}


async def team_tag_path(assistant: Assistant, bucket: str) -> str:
    """Where the 'team' tag sits in the recorded tag list (after the default tags)."""
    history = await assistant.history(bucket)
    keys = [t["Key"] for t in history[0]["properties_after"]["Tags"]]
    return f"/Tags/{keys.index('team')}/Value"


# ====================================================================== the MCP tools


async def test_detect_drift_reports_an_out_of_band_change_with_severity_and_records_it(
    assistant: Assistant, aws: AwsClient
) -> None:
    bucket = await assistant.create_bucket(unique("drift"), {"team": "blue"})
    in_sync = await assistant.ok("detect_drift")
    assert in_sync["drift_detected"] is False
    assert in_sync["in_sync"] == [bucket]

    tag_bucket(aws, bucket, {**cloud_tags(aws, bucket), "team": "red"})
    found = await assistant.ok("detect_drift")

    assert found["drift_detected"] is True
    assert found["drifted"] == [bucket]
    (resource,) = found["resources"]
    assert resource["status"] == "MODIFIED"
    assert resource["max_severity"] == "low"
    assert [d["PropertyPath"] for d in resource["differences"]] == [
        await team_tag_path(assistant, bucket)
    ]
    assert found["recorded_serial"] is not None
    history = await assistant.history(bucket)
    assert [e["operation"] for e in history][-2:] == ["drift_check", "drift_check"]
    state = await assistant.ok("load_state", identifier=bucket)
    assert state["resource"]["drift_status"]["status"] == "MODIFIED"


async def test_a_public_access_change_is_critical(assistant: Assistant, aws: AwsClient) -> None:
    bucket = await assistant.create_bucket(unique("public"), {"team": "blue"})
    aws("s3").put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": False,
            "RestrictPublicBuckets": True,
        },
    )
    found = await assistant.ok("detect_drift", identifier=bucket)
    (resource,) = found["resources"]
    assert resource["max_severity"] == "critical"


async def test_auto_fix_goes_through_the_token_workflow_and_is_recorded_as_remediate(
    assistant: Assistant, aws: AwsClient
) -> None:
    bucket = await assistant.create_bucket(unique("fix"), {"team": "blue"})
    recorded_tags = cloud_tags(aws, bucket)
    tag_bucket(aws, bucket, {**recorded_tags, "team": "red", "extra": "x"})

    fixed = await assistant.ok("detect_drift", identifier=bucket, auto_fix=True)

    (fix,) = fixed["fixes"]
    assert fix["status"] == "REMEDIATED", fix
    assert fix["explanation"]
    assert fixed["remaining_drift"] == []
    assert cloud_tags(aws, bucket) == recorded_tags
    last = (await assistant.history(bucket))[-1]
    assert last["operation"] == "remediate"
    assert last["outcome"] == "SUCCESS"
    assert last["execution_token"] == fix["execution_token"]
    assert last["explanation"] == fix["explanation"]
    assert last["patch_document"] == fix["patch"]
    state = await assistant.ok("load_state", identifier=bucket)
    drift_status = state["resource"]["drift_status"]
    assert drift_status["status"] == "IN_SYNC"
    remediated = drift_status["drift_details"]["remediated"]
    assert {d["PropertyPath"].split("/")[1] for d in remediated} == {"Tags"}
    again = await assistant.ok("detect_drift", identifier=bucket)
    assert again["drift_detected"] is False


async def test_refresh_state_accepts_reality(assistant: Assistant, aws: AwsClient) -> None:
    bucket = await assistant.create_bucket(unique("refresh"), {"team": "blue"})
    tag_bucket(aws, bucket, {**cloud_tags(aws, bucket), "team": "green"})

    refreshed = await assistant.ok("refresh_state", identifier=bucket, user_intent="green now")

    assert refreshed["operation"] == "refresh"
    accepted = refreshed["accepted_differences"]
    assert [d["PropertyPath"] for d in accepted] == [await team_tag_path(assistant, bucket)]
    last = (await assistant.history(bucket))[-1]
    assert (last["operation"], last["user_intent"]) == ("refresh", "green now")
    state = await assistant.ok("load_state", identifier=bucket)
    tags = {t["Key"]: t["Value"] for t in state["resource"]["current_properties"]["Tags"]}
    assert tags["team"] == "green"
    assert (await assistant.ok("detect_drift", identifier=bucket))["drift_detected"] is False


async def test_a_deleted_bucket_is_flagged_and_kept(assistant: Assistant, aws: AwsClient) -> None:
    bucket = await assistant.create_bucket(unique("gone"), {"team": "blue"})
    aws("s3").delete_bucket(Bucket=bucket)

    found = await assistant.ok("detect_drift")

    (resource,) = found["resources"]
    assert (resource["identifier"], resource["status"]) == (bucket, "DELETED")
    state = await assistant.ok("load_state", identifier=bucket)
    assert state["resource"]["drift_status"]["status"] == "DELETED"
    ok, refused = await assistant.call("detect_drift", identifier=bucket, auto_fix=True)
    assert ok and refused["fixes"] == []  # nothing an update could bring back


async def test_unknown_identifier_is_a_clear_error(assistant: Assistant) -> None:
    ok, error = await assistant.call("detect_drift", identifier="not-managed-here")
    assert not ok
    assert error["error"] == "not_found"
    assert "load_state" in error["next_step"]


async def test_a_read_only_server_detects_but_records_and_fixes_nothing(
    server_env: None, tmp_path: Path, aws: AwsClient
) -> None:
    backend = tmp_path / "state"
    async with assistant_on(backend) as writer:
        bucket = await writer.create_bucket(unique("ro"), {"team": "blue"})
    tag_bucket(aws, bucket, {"team": "red"})
    async with assistant_on(backend, readonly=True) as reader:
        found = await reader.ok("detect_drift")
        assert found["drifted"] == [bucket]
        assert found["recorded"] is False
        ok, refused = await reader.call("detect_drift", auto_fix=True)
        assert (ok, refused["error"]) == (False, "read_only")
        ok, refused = await reader.call("refresh_state", identifier=bucket)
        assert (ok, refused["error"]) == (False, "read_only")
        assert [e["operation"] for e in await reader.history(bucket)] == ["create"]


# ====================================================================== the monitor


async def test_the_monitor_records_every_detection(assistant: Assistant, aws: AwsClient) -> None:
    bucket = await assistant.create_bucket(unique("watch"), {"team": "blue"})
    detector, _ = drift_parts(assistant.runtime)
    seen: list[DriftRun] = []
    stop = asyncio.Event()

    async def on_run(run: DriftRun | None, error: object) -> None:
        assert run is not None, error
        seen.append(run)
        if len(seen) == 1:
            tag_bucket(aws, bucket, {"team": "red"})
        if len(seen) == 3:
            stop.set()

    meta = CommitMeta(principal=Principal(user="monitor"))
    runs = await run_drift_monitor(detector, interval=0.01, meta=meta, on_run=on_run, stop=stop)

    assert runs == 3
    assert [r.drift_found for r in seen] == [False, True, True]
    serials = [r.commit.serial for r in seen if r.commit is not None]
    assert len(serials) == 3 and serials == sorted(serials)
    history = await assistant.history(bucket)
    assert [e["operation"] for e in history] == ["create", *["drift_check"] * 3]


# ====================================================================== the CLI


def test_cli_drift_exit_codes_fix_and_json(
    server_env: None, tmp_path: Path, aws: AwsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = tmp_path / "state"

    async def create() -> str:
        async with assistant_on(backend) as session:
            return await session.create_bucket(unique("cli"), {"team": "blue"})

    bucket = asyncio.run(create())
    base = ["drift", "--backend", backend.as_uri(), "--output", "json"]

    assert cli_main([*base, "--exit-code"]) == 0
    capsys.readouterr()
    tag_bucket(aws, bucket, {"team": "red"})
    assert cli_main([*base, "--exit-code"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["drifted"] == [bucket]
    assert report["resources"][0]["differences"][0]["Severity"] == "low"
    assert cli_main(base) == 0  # without --exit-code drift is not an error
    capsys.readouterr()

    assert cli_main([*base, bucket, "--fix", "--exit-code"]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert fixed["fixes"][0]["status"] == "REMEDIATED"
    assert cloud_tags(aws, bucket)["team"] == "blue"

    assert cli_main([*base, "no-such-thing", "--exit-code"]) == 1
    assert cli_main([*base, "no-such-thing"]) == 3


def test_cli_drift_table_shows_severity_and_watch_runs_until_max_runs(
    server_env: None, tmp_path: Path, aws: AwsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = tmp_path / "state"

    async def create() -> str:
        async with assistant_on(backend) as session:
            return await session.create_bucket(unique("table"), {"team": "blue"})

    bucket = asyncio.run(create())
    tag_bucket(aws, bucket, {"team": "red"})
    args = ["drift", "--backend", backend.as_uri()]

    assert cli_main([*args, "--output", "table"]) == 0
    table = capsys.readouterr().out
    assert "1 modified" in table
    assert "/Tags" in table and "low" in table

    code = cli_main([*args, "--watch", "--interval", "10ms", "--max-runs", "2", "--output", "json"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert all(json.loads(line)["drifted"] == [bucket] for line in lines)
