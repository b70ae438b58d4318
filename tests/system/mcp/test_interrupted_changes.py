"""Interrupted changes (issue 11): whatever stops a create, update or delete while Cloud Control
is still working (the client cancels, times out or disconnects; the server is killed), the
state ends equal to AWS, with the change's own lineage entry, and no lock held.

Real processes: `ccstate serve` over stdio with a real MCP client, the sandbox in this process.
The sandbox's ``proceed`` gate holds every Cloud Control operation IN_PROGRESS until the test
opens it, so each interruption happens while AWS is at work, without timing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.sandbox import Sandbox
from ccstate.service.state.model import ResourceState
from ccstate.service.state.store import StateStore

from tests.system.mcp.conftest import ServerFactory
from tests.system.mcp.harness import McpSession, aws_kwargs, server_env

BUCKET = "AWS::S3::Bucket"
PATCH = [{"op": "add", "path": "/VersioningConfiguration", "value": {"Status": "Enabled"}}]
LEASE = "10s"  # a killed server's lock is free again after this (long enough for a slow start)
DEADLINE = 90.0  # seconds: a failing wait ends the test instead of hanging it
ROOT = Path(__file__).resolve().parents[3]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def gate(sandbox: Sandbox) -> Iterator[Any]:
    """Cloud Control's ``proceed`` event: clear() holds every change IN_PROGRESS."""
    assert sandbox.cloudcontrol is not None
    proceed = sandbox.cloudcontrol.proceed
    yield proceed
    proceed.set()


@pytest.fixture
def backend(module_dir: Path, request: pytest.FixtureRequest) -> Path:
    path = module_dir / f"state-{request.node.name}".replace("[", "-").replace("]", "")
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def serve(start_server: ServerFactory, backend: Path) -> Callable[[str], McpSession]:
    def start(name: str) -> McpSession:
        return start_server(backend, name=name, CCSTATE_LOCK_LEASE=LEASE)

    return start


# --------------------------------------------------------------------------- helpers


def bucket_name(operation: str, how: str) -> str:
    return f"interrupted-{operation}-{how}".lower()


def tokens_for(session: McpSession, operation: str, name: str) -> dict[str, str]:
    if operation == "create":
        return session.prepare(resource_type=BUCKET, properties={"BucketName": name})
    if operation == "update":
        return session.prepare(
            resource_type=BUCKET, operation="update", identifier=name, patch_document=PATCH
        )
    return session.prepare(resource_type=BUCKET, operation="delete", identifier=name)


def mutation(operation: str, name: str, tokens: dict[str, str]) -> tuple[str, dict[str, Any]]:
    args: dict[str, Any] = {"resource_type": BUCKET, **tokens}
    if operation != "create":
        args["identifier"] = name
    if operation == "delete":
        args["confirmed"] = True
    return f"{operation}_resource", args


def arrange(session: McpSession, operation: str, name: str) -> tuple[str, dict[str, Any]]:
    """The bucket exists for an update or delete; the tokens of the change are ready."""
    if operation != "create":
        tool, args = mutation("create", name, tokens_for(session, "create", name))
        session.ok(tool, **args)
    return mutation(operation, name, tokens_for(session, operation, name))


def wait_for(what: str, check: Callable[[], Any]) -> Any:
    """Poll observable state until ``check`` returns something truthy."""
    deadline = time.monotonic() + DEADLINE
    pause = 0.02
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


def in_progress(sandbox: Sandbox, operation: str) -> Callable[[], list[Any]]:
    assert sandbox.cloudcontrol is not None
    requests = sandbox.cloudcontrol.requests
    return lambda: requests.matching([operation.upper()], ["IN_PROGRESS"], sandbox.region)


def resource_in_state(backend: Path, name: str) -> ResourceState | None:
    return asyncio.run(StateStore(LocalObjectStore(backend)).get_resource(name))


def open_intents(backend: Path) -> list[str]:
    folder = backend / "default" / "intents"
    return sorted(p.name for p in folder.glob("*.json")) if folder.exists() else []


def intent_has_request_token(backend: Path) -> bool:
    folder = backend / "default" / "intents"
    return any(json.loads(p.read_text()).get("request_token") for p in folder.glob("*.json"))


def held_locks(backend: Path) -> list[Any]:
    return asyncio.run(LocalLockManager(backend).list_locks())


def in_aws(sandbox: Sandbox, name: str) -> dict[str, Any] | None:
    """The bucket as S3 shows it (exists, versioning), or None."""
    s3 = boto3.client("s3", **aws_kwargs(sandbox.env()))
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        return None
    status = s3.get_bucket_versioning(Bucket=name).get("Status")
    return {"versioning": status}


def settled(backend: Path, sandbox: Sandbox, operation: str, name: str) -> bool:
    """The state says what AWS did, nothing is left open, no lock is held."""
    if open_intents(backend) or held_locks(backend):
        return False
    recorded = resource_in_state(backend, name)
    aws = in_aws(sandbox, name)
    if operation == "delete":
        return aws is None and recorded is None
    if aws is None or recorded is None:
        return False
    if operation == "update":
        versioning = recorded.current_properties.get("VersioningConfiguration")
        return aws["versioning"] == "Enabled" and versioning == {"Status": "Enabled"}
    return recorded.current_properties.get("BucketName") == name


def last_entry(backend: Path, name: str) -> dict[str, Any]:
    history = asyncio.run(StateStore(LocalObjectStore(backend)).history(name))
    return history[-1].to_json_dict()


def recover(
    sandbox: Sandbox, backend: Path, home: Path, *extra: str
) -> tuple[int, dict[str, Any], str]:
    env = server_env(sandbox.env(), home, CCSTATE_LOCK_LEASE=LEASE)
    command = ["recover", "--backend", backend.as_uri(), "--output", "json", *extra]
    done = subprocess.run(
        [sys.executable, "-m", "ccstate", *command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def check_entry(backend: Path, operation: str, name: str, *, reconciled_by: str | None) -> None:
    """The change's own lineage entry: its token, the user's intent, the request token."""
    entry = last_entry(backend, name)
    assert entry["operation"] == operation, entry
    assert entry["outcome"] == "SUCCESS", entry
    assert entry["execution_token"].startswith("sha256:"), entry
    assert entry["user_intent"] == "system test", entry
    assert entry.get("request_token"), entry
    if reconciled_by is None:
        assert "reconciled" not in entry, entry
    else:
        assert entry["reconciled"]["by"] == reconciled_by, entry


OPERATIONS = ["create", "update", "delete"]


# --------------------------------------------------------------------------- the server lives


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_cancelled_call_still_records_what_aws_did_and_releases_the_lock(
    sandbox: Sandbox, gate: Any, serve: Callable[[str], McpSession], backend: Path, operation: str
) -> None:
    session = serve(f"cancel-{operation}")
    name = bucket_name(operation, "cancel")
    tool, args = arrange(session, operation, name)
    gate.clear()
    call = session.start_call(tool, **args)
    wait_for("the request to be in progress", in_progress(sandbox, operation))
    [intent] = open_intents(backend)  # written before Cloud Control was called
    assert (backend / "default" / "intents" / intent).stat().st_mode & 0o777 == 0o600

    call.cancel()
    with pytest.raises(concurrent.futures.CancelledError):
        call.result(DEADLINE)
    gate.set()

    wait_for("the state to equal AWS", lambda: settled(backend, sandbox, operation, name))
    if operation != "delete":
        check_entry(backend, operation, name, reconciled_by=None)
    assert session.call("list_state_versions").ok  # the server serves on


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_client_that_times_out_leaves_no_failed_entry(
    sandbox: Sandbox, gate: Any, serve: Callable[[str], McpSession], backend: Path, operation: str
) -> None:
    session = serve(f"timeout-{operation}")
    name = bucket_name(operation, "timeout")
    tool, args = arrange(session, operation, name)
    gate.clear()
    with pytest.raises(Exception):  # noqa: B017 - the SDK's timeout error
        session.call(tool, timeout=1.0, **args)
    assert in_progress(sandbox, operation)(), "Cloud Control is still working"
    gate.set()

    wait_for("the state to equal AWS", lambda: settled(backend, sandbox, operation, name))
    if operation != "delete":
        check_entry(backend, operation, name, reconciled_by=None)


def create_held_in_progress(
    session: McpSession, sandbox: Sandbox, gate: Any, backend: Path, name: str
) -> tuple[concurrent.futures.Future[Any], int]:
    """A create of bucket ``name`` that Cloud Control holds IN_PROGRESS: the call and the pid
    of the server holding its lock."""
    tool, args = arrange(session, "create", name)
    gate.clear()
    call = session.start_call(tool, **args)
    wait_for("the create to be in progress", in_progress(sandbox, "create"))
    return call, wait_for("the lock", lambda: held_locks(backend))[0].pid


@contextlib.contextmanager
def stopped_past_its_lease(pid: int, backend: Path) -> Iterator[None]:
    """The server stopped (SIGSTOP) until its lock's lease has run out; continued on exit."""
    os.kill(pid, signal.SIGSTOP)
    try:
        [lease] = held_locks(backend)  # renewed for the last time
        wait_for("the lease to run out", lambda: datetime.now(UTC) > lease.expires)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_server_stalled_past_its_lease_records_the_change_once_it_runs_again(
    sandbox: Sandbox, gate: Any, start_server: ServerFactory, backend: Path
) -> None:
    """A laptop asleep, a stalled VM: the lock's lease runs out while Cloud Control works, so
    the commit is refused. The server takes the lock again and records the change itself."""
    session = start_server(backend, name="stalled", CCSTATE_LOCK_LEASE="2s")
    name = bucket_name("create", "stalled")
    call, pid = create_held_in_progress(session, sandbox, gate, backend, name)

    with stopped_past_its_lease(pid, backend):
        gate.set()

    outcome = call.result(DEADLINE)
    assert outcome.ok, (outcome.error, session.server_log())
    assert "Lost the lock" in session.server_log()
    assert settled(backend, sandbox, "create", name)
    check_entry(backend, "create", name, reconciled_by="after its lock lapsed")


def test_a_stalled_server_that_settles_again_leaves_the_next_changes_intent_open(
    sandbox: Sandbox, gate: Any, start_server: ServerFactory, backend: Path, module_dir: Path
) -> None:
    """While server A is stopped past its lease, `recover` records A's create, and server B
    starts an update of the same bucket and is killed while Cloud Control works: B's intent
    is open (the journal's key is the resource's). When A runs again and settles under a new
    lock, it must not close B's intent: B's update happened in AWS and only that intent says so.
    """
    first = start_server(backend, name="stalled-a", CCSTATE_LOCK_LEASE="2s")
    name = bucket_name("create", "stalled-then-b")
    call, pid = create_held_in_progress(first, sandbox, gate, backend, name)
    wait_for("A's intent to have its request token", lambda: intent_has_request_token(backend))

    with stopped_past_its_lease(pid, backend):
        gate.set()  # A's create is done in AWS
        code, report, _ = recover(sandbox, backend, module_dir / "home-recover-b")
        assert code == 0, report
        assert [i["result"] for i in report["intents"]] == ["recorded"], report
        assert not open_intents(backend)

        second = start_server(backend, name="stalled-b", CCSTATE_LOCK_LEASE="2s")
        update_tool, update_args = mutation("update", name, tokens_for(second, "update", name))
        gate.clear()
        second.start_call(update_tool, **update_args)
        wait_for("the update to be in progress", in_progress(sandbox, "update"))
        b_pid = wait_for("B's lock", lambda: held_locks(backend))[0].pid
        os.kill(b_pid, signal.SIGKILL)  # B's update is running in AWS, its intent open
        b_intents = open_intents(backend)
        assert b_intents

    outcome = call.result(DEADLINE)
    wait_for("A to release its lock", lambda: not held_locks(backend))
    assert open_intents(backend) == b_intents, (outcome.data, first.server_log())
    assert outcome.data["details"]["intent_open"] is False, outcome.data  # recover recorded it

    gate.set()
    code, report, _ = recover(sandbox, backend, module_dir / "home-recover-b")
    assert code == 0, report
    assert settled(backend, sandbox, "update", name), report


# --------------------------------------------------------------------------- the server goes


@pytest.mark.parametrize("operation", OPERATIONS)
def test_after_a_disconnect_the_next_server_records_the_outcome(
    sandbox: Sandbox, gate: Any, serve: Callable[[str], McpSession], backend: Path, operation: str
) -> None:
    session = serve(f"disconnect-{operation}")
    name = bucket_name(operation, "disconnect")
    tool, args = arrange(session, operation, name)
    gate.clear()
    session.start_call(tool, **args)
    wait_for("the request to be in progress", in_progress(sandbox, operation))

    session.close()  # stdin closed; the SDK stops the server (SIGTERM, then SIGKILL)
    assert open_intents(backend), "the interrupted change is on record"
    gate.set()

    restarted = serve(f"disconnect-{operation}-again")
    wait_for("the state to equal AWS", lambda: settled(backend, sandbox, operation, name))
    if operation != "delete":
        check_entry(backend, operation, name, reconciled_by="server start")
    assert restarted.call("list_state_versions").ok


@pytest.mark.parametrize("operation", OPERATIONS)
def test_after_sigkill_ccstate_recover_records_the_outcome(
    sandbox: Sandbox,
    gate: Any,
    serve: Callable[[str], McpSession],
    backend: Path,
    module_dir: Path,
    operation: str,
) -> None:
    session = serve(f"sigkill-{operation}")
    name = bucket_name(operation, "sigkill")
    tool, args = arrange(session, operation, name)
    gate.clear()
    session.start_call(tool, **args)
    wait_for("the request to be in progress", in_progress(sandbox, operation))
    holder = wait_for("the lock", lambda: held_locks(backend))[0]

    os.kill(holder.pid, signal.SIGKILL)  # the server: it holds the resource's lock
    gate.set()
    assert open_intents(backend)

    code, report, progress = recover(sandbox, backend, module_dir / "home-recover")
    assert code == 0, (report, progress)
    [item] = report["intents"]
    assert (item["operation"], item["result"], item["outcome"]) == (
        operation,
        "recorded",
        "SUCCESS",
    ), item
    assert item["request_token"], item
    assert "settling the" in progress  # progress on stderr, JSON on stdout
    assert settled(backend, sandbox, operation, name)
    if operation != "delete":
        check_entry(backend, operation, name, reconciled_by="ccstate recover")

    again = recover(sandbox, backend, module_dir / "home-recover")
    assert again[:2] == (0, {"workspace": "default", "intents": [], "settled": 0, "open": 0})
    session.close()


def test_recover_leaves_a_request_still_running_open_and_exits_10(
    sandbox: Sandbox,
    gate: Any,
    serve: Callable[[str], McpSession],
    backend: Path,
    module_dir: Path,
) -> None:
    session = serve("still-running")
    name = bucket_name("update", "still-running")
    tool, args = arrange(session, "update", name)
    gate.clear()
    session.start_call(tool, **args)
    wait_for("the request to be in progress", in_progress(sandbox, "update"))
    holder = wait_for("the lock", lambda: held_locks(backend))[0]
    os.kill(holder.pid, signal.SIGKILL)

    code, report, _ = recover(sandbox, backend, module_dir / "home-recover", "--wait", "0")

    assert code == 10, report
    assert [(i["result"], i["settled"]) for i in report["intents"]] == [("in_progress", False)]
    assert report["open"] == 1 and open_intents(backend)
    assert not held_locks(backend)  # recover released the lock it took
    assert last_entry(backend, name)["operation"] == "create"  # nothing recorded as FAILED

    gate.set()
    code, report, _ = recover(sandbox, backend, module_dir / "home-recover")
    assert code == 0, report
    assert settled(backend, sandbox, "update", name)
    check_entry(backend, "update", name, reconciled_by="ccstate recover")
    session.close()
