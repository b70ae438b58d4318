"""``ccstate stack`` as separate processes against the sandbox: deploy and destroy a file, and a
deploy SIGKILLed at a step, then ``stack recover``: fully rolled back, 0 orphans by Cloud
Control ListResources, no lock left held; the same for an update (``deploy`` of a changed file)
killed in its forward phase (rolled back) and in its cleanup (finished)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "AWS::SQS::Queue"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(operation_ms=150) as sb:  # each create stays IN_PROGRESS a while: a window
        yield sb


@pytest.fixture
def env(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "SECURITY_SCANNING": "disabled",
        "CCSTATE_BACKEND": (tmp_path / "state").as_uri(),
        **sandbox.env(),
    }


def ccstate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccstate", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def queues(prefix: str, count: int = 12) -> dict[str, Any]:
    """Three chains of four queues, each after the one three before it."""
    out: dict[str, Any] = {}
    for k in range(count):
        props: dict[str, Any] = {"QueueName": f"{prefix}-q{k}"}
        if k >= 3:
            props["Tags"] = [{"Key": "after", "Value": {"Fn::GetAtt": [f"Q{k - 3}", "Arn"]}}]
        out[f"Q{k}"] = {"Type": QUEUE, "Properties": props}
    return out


def listed(sandbox: Sandbox, prefix: str) -> list[str]:
    async def run() -> list[str]:
        async with CloudControlProvider(endpoint_url=sandbox.endpoint_url) as cloud:
            page = await cloud.list_resources(QUEUE)
            return [r.identifier for r in page.resources if f"/{prefix}-" in r.identifier]

    return asyncio.run(run())


def test_deploy_show_events_and_destroy_a_yaml_stack(
    env: dict[str, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    prefix = f"y{uuid.uuid4().hex[:6]}"
    path = tmp_path / "stack.yaml"
    path.write_text(
        "Resources:\n"
        "  First:\n"
        "    Type: AWS::SQS::Queue\n"
        f"    Properties: {{QueueName: {prefix}-first}}\n"
        "  Second:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        f"      QueueName: {prefix}-second\n"
        "      Tags: [{Key: first, Value: !Ref First}]\n"
    )
    deployed = ccstate(env, "stack", "deploy", str(path), "--name", "yaml", "--output", "json")
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout)["status"] == "CREATE_COMPLETE"
    assert "First" in deployed.stderr and "CREATE_COMPLETE" in deployed.stderr  # progress
    assert len(listed(sandbox, prefix)) == 2
    shown = json.loads(ccstate(env, "stack", "list", "--output", "json").stdout)
    assert shown["stacks"][0]["stack_name"] == "yaml"
    events = json.loads(ccstate(env, "stack", "events", "yaml", "--output", "json").stdout)
    assert [e["logical_id"] for e in events["events"] if e["status"] == "CREATE_COMPLETE"] == [
        "First",
        "Second",
        "yaml",  # the stack's own event last
    ]
    destroyed = ccstate(env, "stack", "destroy", "yaml")
    assert destroyed.returncode == 0, destroyed.stderr
    assert listed(sandbox, prefix) == []


@pytest.mark.parametrize("step", range(12))
def test_a_deploy_killed_at_a_step_is_recovered(
    env: dict[str, str], sandbox: Sandbox, tmp_path: Path, step: int
) -> None:
    prefix = f"k{step}{uuid.uuid4().hex[:6]}"
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"stack_name": "killed", "resources": queues(prefix)}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccstate", "stack", "deploy", str(path), "--concurrency", "3"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the progress lines: kill when step k has been asked for
        seen.append(line)
        if f"  Q{step} " in line and "CREATE_IN_PROGRESS" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(f"Q{step}" in line for line in seen), "".join(seen)

    recovered = ccstate(env, "stack", "recover", "killed", "--output", "json")
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout)["status"] == "ROLLBACK_COMPLETE"
    assert listed(sandbox, prefix) == []  # 0 orphans
    locks = json.loads(ccstate(env, "lock", "list", "--output", "json").stdout)
    assert [lock for lock in locks["locks"] if not lock["expired"]] == []


def update_files(tmp_path: Path, prefix: str) -> tuple[Path, Path]:
    """v1: Main, Worker (reads Main's Arn), Slow, Old. v2: Main replaced, Worker updated, Slow
    updated in place, Extra added after Worker, Old removed."""

    def q(name: str, **props: Any) -> dict[str, Any]:
        return {"Type": QUEUE, "Properties": {"QueueName": f"{prefix}-{name}", **props}}

    reads_main = [{"Key": "main", "Value": {"Fn::GetAtt": ["Main", "Arn"]}}]
    v1 = {"Main": q("main"), "Worker": q("worker", Tags=reads_main), "Slow": q("slow")}
    v1["Old"] = q("old")
    v2 = {**v1, "Main": q("main2"), "Slow": q("slow", DelaySeconds=7)}
    v2["Extra"] = q("extra", Tags=[{"Key": "worker", "Value": {"Ref": "Worker"}}])
    del v2["Old"]
    paths = tmp_path / "v1.json", tmp_path / "v2.json"
    for path, resources in zip(paths, (v1, v2), strict=True):
        path.write_text(json.dumps({"stack_name": "changing", "resources": resources}))
    return paths


def described(sandbox: Sandbox, prefix: str) -> dict[str, dict[str, Any]]:
    """The prefix's queues by name, with their properties (tags as a map)."""

    async def run() -> dict[str, dict[str, Any]]:
        async with CloudControlProvider(endpoint_url=sandbox.endpoint_url) as cloud:
            page = await cloud.list_resources(QUEUE)
            out = {}
            for r in page.resources:
                if f"/{prefix}-" in r.identifier:
                    props = (await cloud.get_resource(QUEUE, r.identifier)).properties
                    props["Tags"] = {t["Key"]: t["Value"] for t in props.get("Tags", [])}
                    out[props["QueueName"]] = props
            return out

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("logical", "status", "ends"),
    [
        ("Main", "CREATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"),  # the replacement's create
        ("Extra", "CREATE_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"),  # the last forward step
        ("Old", "DELETE_IN_PROGRESS", "UPDATE_COMPLETE"),  # the cleanup: resumed
    ],
)
def test_an_update_killed_at_a_step_is_recovered(
    env: dict[str, str], sandbox: Sandbox, tmp_path: Path, logical: str, status: str, ends: str
) -> None:
    prefix = f"uk{uuid.uuid4().hex[:6]}"
    v1, v2 = update_files(tmp_path, prefix)
    deployed = ccstate(env, "stack", "deploy", str(v1))
    assert deployed.returncode == 0, deployed.stderr
    before = described(sandbox, prefix)
    if logical == "Main":  # once: the plan, which changes nothing
        planned = ccstate(env, "stack", "deploy", str(v2), "--plan", "--output", "json")
        assert planned.returncode == 0, planned.stderr
        actions = {a["logical_id"]: a["action"] for a in json.loads(planned.stdout)["actions"]}
        assert actions == {
            "Main": "replace",
            "Worker": "update",
            "Slow": "update",
            "Extra": "add",
            "Old": "remove",
        }
        assert described(sandbox, prefix) == before
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccstate", "stack", "deploy", str(v2), "--concurrency", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if f"  {logical} " in line and status in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(f"  {logical} " in line and status in line for line in seen), "".join(seen)

    recovered = ccstate(env, "stack", "recover", "changing", "--output", "json")
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout)["status"] == ends
    after = described(sandbox, prefix)
    if ends == "UPDATE_ROLLBACK_COMPLETE":
        assert after == before  # the same queues with the same properties: 0 orphans
    else:
        assert sorted(after) == sorted(
            f"{prefix}-{n}" for n in ("main2", "worker", "slow", "extra")
        )
    stack_tagged = [n for n, p in after.items() if p["Tags"].get("ccstate:stack") == "changing"]
    assert sorted(stack_tagged) == sorted(after)
    locks = json.loads(ccstate(env, "lock", "list", "--output", "json").stdout)
    assert [lock for lock in locks["locks"] if not lock["expired"]] == []


def test_an_update_with_no_rollback_stops_and_is_rolled_back_on_request(
    env: dict[str, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    prefix = f"nr{uuid.uuid4().hex[:6]}"
    v1, v2 = update_files(tmp_path, prefix)
    bad = json.loads(v2.read_text())
    bad["resources"]["Extra"]["Properties"]["DelaySeconds"] = 100000  # SQS allows 0..900
    v2.write_text(json.dumps(bad))
    assert ccstate(env, "stack", "deploy", str(v1)).returncode == 0
    before = described(sandbox, prefix)

    stopped = ccstate(env, "stack", "deploy", str(v2), "--no-rollback", "--output", "json")

    assert stopped.returncode == 11, stopped.stderr
    out = json.loads(stopped.stdout)
    assert out["status"] == "UPDATE_FAILED"
    assert out["reason"].startswith("Extra:") and "not removed: Old" in out["reason"]
    assert "`ccstate stack rollback` changing" in out["next_step"]
    after = described(sandbox, prefix)  # the steps before Extra stay; no cleanup
    assert sorted(after) == sorted(
        f"{prefix}-{n}" for n in ("main", "main2", "worker", "slow", "old")
    )
    assert int(after[f"{prefix}-slow"]["DelaySeconds"]) == 7
    shown = ccstate(env, "stack", "show", "changing")
    assert "UPDATE_FAILED" in shown.stdout and "reason: Extra:" in shown.stdout
    assert "next: " in shown.stdout
    events = ccstate(env, "stack", "events", "changing").stdout
    assert any("Extra" in line and "CREATE_FAILED: " in line for line in events.splitlines())
    recovered = ccstate(env, "stack", "recover", "changing", "--output", "json")
    assert json.loads(recovered.stdout)["reason"].startswith("Nothing to recover")
    assert described(sandbox, prefix) == after

    back = ccstate(env, "stack", "rollback", "changing", "--output", "json")

    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["status"] == "UPDATE_ROLLBACK_COMPLETE"
    assert described(sandbox, prefix) == before
    locks = json.loads(ccstate(env, "lock", "list", "--output", "json").stdout)
    assert [lock for lock in locks["locks"] if not lock["expired"]] == []
