"""``ccstate drift`` as a separate process against the sandbox, and the demo's drift step
through a real ``ccstate serve --sandbox`` MCP session."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from ccstate.backends.cloudcontrol import CloudControlProvider
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.sandbox import Sandbox
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "AWS::SQS::Queue"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
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


def adopt_queue(sandbox: Sandbox, backend: str) -> str:
    """Create a queue through Cloud Control and record it as a create would."""

    async def run() -> str:
        async with CloudControlProvider(endpoint_url=sandbox.endpoint_url) as cloud:
            name = f"drift-{uuid.uuid4().hex[:10]}"
            event = await cloud.create_resource(QUEUE, {"QueueName": name}, client_token=name)
            done = await cloud.wait_for_request(event.request_token, timeout=60)
            assert done.identifier is not None
            found = await cloud.get_resource(QUEUE, done.identifier)
        store = StateStore(LocalObjectStore(Path(backend.removeprefix("file://"))), "default")
        props = {k: v for k, v in found.properties.items() if k != "Arn"}
        change = ResourceChange(
            identifier=done.identifier,
            resource_type=QUEUE,
            operation="create",
            properties_after=props,
        )
        await store.commit([change], CommitMeta(principal=Principal(user="test")))
        return done.identifier

    return asyncio.run(run())


def ccstate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccstate", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def sqs(sandbox: Sandbox) -> Any:
    return boto3.client("sqs", **_aws(sandbox))


def _aws(sandbox: Sandbox) -> dict[str, str]:
    env = sandbox.env()
    return {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "region_name": env["AWS_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


def test_exit_codes_json_and_fix(sandbox: Sandbox, env: dict[str, str]) -> None:
    queue = adopt_queue(sandbox, env["CCSTATE_BACKEND"])

    in_sync = ccstate(env, "drift", "--exit-code", "--output", "json")
    assert in_sync.returncode == 0, in_sync.stderr
    assert json.loads(in_sync.stdout)["counts"]["IN_SYNC"] == 1

    sqs(sandbox).set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "99"})
    drifted = ccstate(env, "drift", "--exit-code", "--output", "json")
    assert drifted.returncode == 2, drifted.stderr
    report = json.loads(drifted.stdout)
    assert report["drifted"] == [queue]
    (difference,) = report["resources"][0]["differences"]
    assert (difference["PropertyPath"], difference["ActualValue"]) == ("/VisibilityTimeout", 99)

    table = ccstate(env, "drift", queue)
    assert table.returncode == 0
    assert "/VisibilityTimeout" in table.stdout and "medium" in table.stdout

    fixed = ccstate(env, "drift", queue, "--fix", "--exit-code", "--output", "json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert json.loads(fixed.stdout)["fixes"][0]["status"] == "REMEDIATED"
    attributes = sqs(sandbox).get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "30"

    history = ccstate(env, "state", "history", queue, "--output", "json")
    operations = [e["operation"] for e in json.loads(history.stdout)["entries"]]
    assert operations == [
        "create",
        "drift_check",
        "drift_check",
        "drift_check",
        "drift_check",
        "remediate",
    ]


def test_errors_exit_1_with_exit_code(sandbox: Sandbox, env: dict[str, str]) -> None:
    adopt_queue(sandbox, env["CCSTATE_BACKEND"])
    missing = ccstate(env, "drift", "not-in-state", "--exit-code")
    assert missing.returncode == 1
    assert "not in the state" in missing.stderr
    bad_flags = ccstate(env, "drift", "--interval", "1h")
    assert bad_flags.returncode == 2
    assert "--watch" in bad_flags.stderr


@pytest.mark.parametrize(
    ("stop", "code", "said"),
    [(signal.SIGINT, 130, "Interrupted."), (signal.SIGTERM, 143, "Terminated.")],
    ids=["ctrl-c", "sigterm"],
)
def test_watch_records_every_check_until_interrupted(
    sandbox: Sandbox, env: dict[str, str], stop: signal.Signals, code: int, said: str
) -> None:
    queue = adopt_queue(sandbox, env["CCSTATE_BACKEND"])
    sqs(sandbox).tag_queue(QueueUrl=queue, Tags={"owner": "someone-else"})
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ccstate",
            "drift",
            "--watch",
            "--interval",
            "1h",
            "--output",
            "json",
        ],
        env={**env, "PYTHONFAULTHANDLER": "1"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())  # the first check is made at once
        assert first["drifted"] == [queue]
        watcher.send_signal(stop)
        exited = _exit_code_or_thread_dump(watcher, timeout=60)
        assert watcher.stderr is not None
        last_words = watcher.stderr.read()
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert exited == code, last_words
    assert said in last_words
    history = ccstate(env, "state", "history", queue, "--output", "json")
    last = json.loads(history.stdout)["entries"][-1]
    assert last["operation"] == "drift_check"


def _exit_code_or_thread_dump(process: subprocess.Popen[str], timeout: float) -> int:
    """The exit code; a process still running after ``timeout`` is aborted (with
    PYTHONFAULTHANDLER set it prints every thread's stack) and the test fails with that dump,
    so a hang says where it hangs."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        _, err = process.communicate(timeout=30)
        pytest.fail(f"still running {timeout:g} s after the signal; its threads:\n{err[-20000:]}")


def test_watch_with_max_runs_prints_one_json_line_per_check(
    sandbox: Sandbox, env: dict[str, str]
) -> None:
    adopt_queue(sandbox, env["CCSTATE_BACKEND"])
    watched = ccstate(
        env, "drift", "--watch", "--interval", "20ms", "--max-runs", "3", "--output", "json"
    )
    assert watched.returncode == 0, watched.stderr
    lines = watched.stdout.strip().splitlines()
    assert [json.loads(line)["counts"]["IN_SYNC"] for line in lines] == [1, 1, 1]
    serials = [json.loads(line)["recorded_serial"] for line in lines]
    assert serials == sorted(set(serials))


def test_the_demo_drift_step_detects_and_fixes_an_out_of_band_change(tmp_path: Path) -> None:
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from ccstate.demo_drift import drift_step
    from ccstate.demo_output import DemoPrinter
    from ccstate.mcp_demo import S3, DemoSession

    out = io.StringIO()
    printer = DemoPrinter(out)
    backend = tmp_path / "state"
    home = tmp_path / "home"
    home.mkdir()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ccstate", "serve", "--sandbox", "--backend", backend.as_uri()],
        env={
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "PYTHONPATH": str(ROOT),
            "SECURITY_SCANNING": "disabled",
            "CCSTATE_USER": "demo-user",
        },
        cwd=str(ROOT),
    )

    async def story() -> None:
        with open(tmp_path / "server.log", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120) as c:
                session = DemoSession(c, printer)
                info = await session.call("get_aws_session_info")
                tokens = await session.prepare(
                    info["credentials_token"],
                    "logs",
                    resource_type=S3,
                    properties={"BucketName": "demo-drift", "Tags": [{"Key": "t", "Value": "a"}]},
                )
                await session.call("create_resource", resource_type=S3, **tokens)
                await drift_step(session, printer, "demo-drift")

    asyncio.run(story())
    text = out.getvalue()
    assert "[critical] ADD       /PublicAccessBlockConfiguration" in text, text
    assert "shadow-it" in text
    assert "demo-drift: REMEDIATED" in text
    assert "remediate SUCCESS by demo-user" in text
    assert '"PublicAccessBlockConfiguration": null' in text


def test_drift_rules_file_changes_the_severity(
    sandbox: Sandbox, env: dict[str, str], tmp_path: Path
) -> None:
    queue = adopt_queue(sandbox, env["CCSTATE_BACKEND"])
    sqs(sandbox).set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "77"})
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps([{"resource_type": QUEUE, "path": "/VisibilityTimeout", "severity": "critical"}])
    )
    env = {**env, "CCSTATE_DRIFT_RULES": str(rules)}
    report = json.loads(ccstate(env, "drift", queue, "--output", "json").stdout)
    (difference,) = report["resources"][0]["differences"]
    assert difference["Severity"] == "critical"

    rules.write_text("[{not json")
    broken = ccstate(env, "drift", queue)
    assert broken.returncode == 2
    assert "rules.json is not valid JSON (line 1" in broken.stderr
