"""The stack tools through a real MCP client session on `ccstate serve`, and a stack deploy
from another process holding its stack lock while the MCP server changes a resource outside
the stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ccstate.sandbox import Sandbox

from ccstate.demo_stack import RESOURCES
from tests.system.mcp.conftest import ServerFactory, held_locks
from tests.system.mcp.harness import McpSession, server_env

ROOT = Path(__file__).resolve().parents[3]


def test_create_get_and_destroy_the_demo_stack(server: McpSession, backend_dir: Path) -> None:
    created = server.ok(
        "create_stack", stack_name="demo-data", resources=RESOURCES, user_intent="test"
    )
    assert created["status"] == "CREATE_COMPLETE", created
    done = [e["logical_id"] for e in created["events"] if e["status"] == "CREATE_COMPLETE"]
    assert done == ["DataKey", "Data", "Reader", "demo-data"]  # a chain: strictly in order
    key_arn = server.ok("load_state", identifier=created["resources"]["DataKey"]["identifier"])
    bucket = server.ok("load_state", identifier=created["resources"]["Data"]["identifier"])
    encryption = json.dumps(bucket["resource"]["current_properties"]["BucketEncryption"])
    assert key_arn["resource"]["current_properties"]["Arn"] in encryption  # GetAtt resolved

    listed = server.ok("list_stacks")["stacks"]
    assert [s["stack_name"] for s in listed] == ["demo-data"]
    refused = server.call("destroy_stack", stack_name="demo-data")
    assert refused.error == "invalid_input"
    destroyed = server.ok("destroy_stack", stack_name="demo-data", confirmed=True)
    assert destroyed["status"] == "DELETE_COMPLETE", destroyed
    gone = [e["logical_id"] for e in destroyed["events"] if e["status"] == "DELETE_COMPLETE"]
    assert gone[-4:] == ["Reader", "Data", "DataKey", "demo-data"]  # dependents first
    assert held_locks(backend_dir) == []


def test_a_cycle_is_refused_naming_it(server: McpSession) -> None:
    cyclic = {
        "A": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "B"}}},
        "B": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Ref": "A"}}},
    }
    refused = server.call("create_stack", stack_name="loop", resources=cyclic, user_intent="x")
    assert refused.error == "invalid_input"
    assert "A -> B -> A" in refused.data["message"] or "B -> A -> B" in refused.data["message"]


def test_a_stack_deploy_holds_its_lock_while_others_change_resources_outside_it(
    start_server: ServerFactory, sandbox: Sandbox, module_dir: Path
) -> None:
    backend = module_dir / "shared"
    backend.mkdir(mode=0o700)
    server = start_server(backend, name="outside")
    prefix = f"s{uuid.uuid4().hex[:6]}"
    stack = {
        f"Q{k}": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{prefix}-{k}"}}
        for k in range(3)
    }
    path = module_dir / "three.json"
    path.write_text(json.dumps({"stack_name": "three", "resources": stack}))
    home = module_dir / "home-deployer"
    home.mkdir(exist_ok=True)
    env = server_env(sandbox.env(), home, CCSTATE_BACKEND=backend.as_uri())
    deployer = subprocess.Popen(
        [sys.executable, "-m", "ccstate", "stack", "deploy", str(path), "--concurrency", "1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert deployer.stderr is not None
    for line in deployer.stderr:
        if "CREATE_COMPLETE" in line:
            break
    _stop_between_file_locks(deployer.pid)  # mid-stack, holding the stack lock
    try:
        held = [lock for lock in held_locks(backend) if lock.resource == "stack:three"]  # type: ignore[attr-defined]
        assert [lock.pid for lock in held] == [deployer.pid]  # type: ignore[attr-defined]
        tokens = server.prepare(
            resource_type="AWS::SQS::Queue", properties={"QueueName": f"{prefix}-outside"}
        )
        outside = server.call("create_resource", resource_type="AWS::SQS::Queue", **tokens)
        assert outside.ok, outside.data
    finally:
        deployer.send_signal(signal.SIGCONT)
    rest = deployer.stderr.read()
    assert deployer.wait(timeout=120) == 0, rest  # 0: CREATE_COMPLETE (a rollback exits 10)
    assert "Q2" in rest and "CREATE_COMPLETE" in rest
    assert held_locks(backend) == []


def _holds_file_lock(pid: int) -> bool:
    """Whether ``pid`` holds a flock or POSIX lock now (Linux /proc/locks)."""
    rows = Path("/proc/locks").read_text().splitlines()
    return any(len(r.split()) > 4 and r.split()[4] == str(pid) for r in rows if "->" not in r)


def _stop_between_file_locks(pid: int) -> None:
    """SIGSTOP ``pid`` outside the millisecond-long flocks of its lock and store files: stopped
    inside one, it would hold every process of the workspace, which no real pause does."""
    for _ in range(1000):
        os.kill(pid, signal.SIGSTOP)
        if not _holds_file_lock(pid):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.001)  # let it leave the flock it holds
    raise AssertionError(f"process {pid} never left its file locks")


def test_update_stack_previews_updates_and_rolls_back(server: McpSession) -> None:
    prefix = f"u{uuid.uuid4().hex[:6]}"

    def queue(name: str, **props: object) -> dict[str, object]:
        return {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{prefix}-{name}", **props}}

    first = {"Jobs": queue("jobs")}
    created = server.ok("create_stack", stack_name=prefix, resources=first, user_intent="v1")
    assert created["status"] == "CREATE_COMPLETE", created
    second = {"Jobs": queue("jobs", DelaySeconds=5), "Dead": queue("dead")}
    preview = server.ok(
        "update_stack", stack_name=prefix, resources=second, user_intent="v2", preview=True
    )
    assert {a["logical_id"]: a["action"] for a in preview["actions"]} == {
        "Jobs": "update",
        "Dead": "add",
    }
    assert server.ok("get_stack", stack_name=prefix)["resources"].keys() == {"Jobs"}
    updated = server.ok("update_stack", stack_name=prefix, resources=second, user_intent="v2")
    assert updated["status"] == "UPDATE_COMPLETE", updated
    jobs = updated["resources"]["Jobs"]["identifier"]
    assert server.ok("get_resource", resource_type="AWS::SQS::Queue", identifier=jobs)[
        "properties"
    ]["DelaySeconds"] in (5, "5")
    back = server.ok("rollback_stack", stack_name=prefix, user_intent="undo")
    assert back["status"] == "UPDATE_COMPLETE", back
    assert back["resources"].keys() == {"Jobs"}
    assert server.ok("get_resource", resource_type="AWS::SQS::Queue", identifier=jobs)[
        "properties"
    ]["DelaySeconds"] in (0, "0")


def test_create_stack_previews_one_plan_token_that_deploys_only_its_plan(
    server: McpSession,
) -> None:
    prefix = f"p{uuid.uuid4().hex[:6]}"
    queues = {
        f"Q{k}": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{prefix}-{k}"}}
        for k in range(2)
    }
    plan = server.ok(
        "create_stack", stack_name=prefix, resources=queues, user_intent="two", preview=True
    )
    assert [a["logical_id"] for a in plan["actions"]] == ["Q0", "Q1"]
    assert "Q0" in plan["explanation"] and "Q1" in plan["explanation"]
    assert plan["plan_token"] and plan["security_scan"]["status"]
    other = {"Q0": queues["Q0"]}
    refused = server.call(
        "create_stack",
        stack_name=prefix,
        resources=other,
        user_intent="two",
        plan_token=plan["plan_token"],
    )
    assert refused.error == "token_error", refused.data
    created = server.ok(
        "create_stack",
        stack_name=prefix,
        resources=queues,
        user_intent="two",
        plan_token=plan["plan_token"],
    )
    assert created["status"] == "CREATE_COMPLETE", created
    queue = created["resources"]["Q1"]["identifier"]
    history = server.ok("show_resource_history", identifier=queue)
    assert json.dumps(history).count("#Q1/create.") >= 1  # names the plan token and its step


def test_update_stack_without_rollback_stops_then_rollback_stack_undoes_it(
    server: McpSession, backend_dir: Path
) -> None:
    prefix = f"n{uuid.uuid4().hex[:6]}"

    def queue(name: str, **props: object) -> dict[str, object]:
        return {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{prefix}-{name}", **props}}

    first = {"Jobs": queue("jobs"), "Mail": queue("mail")}
    created = server.ok("create_stack", stack_name=prefix, resources=first, user_intent="v1")
    assert created["status"] == "CREATE_COMPLETE", created
    jobs = created["resources"]["Jobs"]["identifier"]
    # Jobs updated; Dead (after Jobs) refused by SQS (DelaySeconds allows 0..900)
    second = {
        "Jobs": queue("jobs", DelaySeconds=5),
        "Mail": queue("mail"),
        "Dead": queue("dead", DelaySeconds=100000, Tags=[{"Key": "j", "Value": {"Ref": "Jobs"}}]),
    }
    stopped = server.ok(
        "update_stack", stack_name=prefix, resources=second, user_intent="v2", rollback=False
    )
    assert stopped["status"] == "UPDATE_FAILED", stopped
    assert stopped["reason"].startswith("Dead:") and "complete: Jobs" in stopped["reason"]
    assert "rollback_stack" in stopped["next_step"]
    assert "${" not in stopped["next_step"]
    assert stopped["resources"].keys() == {"Jobs", "Mail"}
    failed = [e for e in stopped["events"] if e["logical_id"] == "Dead"][-1]
    assert failed["status"] == "CREATE_FAILED" and failed["reason"]
    assert server.ok("get_resource", resource_type="AWS::SQS::Queue", identifier=jobs)[
        "properties"
    ]["DelaySeconds"] in (5, "5")  # the step before the failure stays applied
    shown = server.ok("get_stack", stack_name=prefix)
    assert shown["status"] == "UPDATE_FAILED" and shown["reason"] == stopped["reason"]
    recovered = server.ok("recover_stack", stack_name=prefix)
    assert recovered["status"] == "UPDATE_FAILED"
    assert recovered["reason"].startswith("Nothing to recover")
    assert held_locks(backend_dir) == []

    back = server.ok("rollback_stack", stack_name=prefix, user_intent="undo")

    assert back["status"] == "UPDATE_ROLLBACK_COMPLETE", back
    assert server.ok("get_resource", resource_type="AWS::SQS::Queue", identifier=jobs)[
        "properties"
    ]["DelaySeconds"] in (0, "0")
    assert held_locks(backend_dir) == []


def test_a_stopped_update_and_its_rollback_each_run_under_a_previewed_plan_token(
    server: McpSession,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}"

    def queue(name: str, **props: object) -> dict[str, object]:
        return {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"{prefix}-{name}", **props}}

    first = {"Jobs": queue("jobs")}
    assert (
        server.ok("create_stack", stack_name=prefix, resources=first, user_intent="v1")["status"]
        == "CREATE_COMPLETE"
    )
    second = {
        "Jobs": queue("jobs", DelaySeconds=5),
        "Dead": queue("dead", DelaySeconds=100000, Tags=[{"Key": "j", "Value": {"Ref": "Jobs"}}]),
    }
    args = {"stack_name": prefix, "resources": second, "user_intent": "v2"}
    plan = server.ok("update_stack", preview=True, **args)
    stopped = server.ok("update_stack", rollback=False, plan_token=plan["plan_token"], **args)
    assert stopped["status"] == "UPDATE_FAILED", stopped
    assert "preview=true" in stopped["next_step"]

    undo = server.ok("rollback_stack", stack_name=prefix, user_intent="undo", preview=True)

    assert undo["operation"] == "undo" and undo["plan_token"]
    assert "Roll back the stopped update" in undo["explanation"]
    touched = {a["logical_id"]: a["identifiers"] for a in undo["actions"]}
    assert touched["Dead"] == [] and len(touched["Jobs"]) == 1  # Dead's create never landed
    back = server.ok(
        "rollback_stack", stack_name=prefix, user_intent="undo", plan_token=undo["plan_token"]
    )
    assert back["status"] == "UPDATE_ROLLBACK_COMPLETE", back
    jobs = back["resources"]["Jobs"]["identifier"]
    history = json.dumps(server.ok("show_resource_history", identifier=jobs))
    assert "#Jobs/undo." in history  # the patch back names the undo's plan token
