"""`ccstate import` and `ccstate state rm` as a user runs them: real processes, the sandbox over
HTTP as AWS, a state on disk. Also the lock-wait notice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from ccstate.sandbox import Sandbox

from tests.system.test_local_locks_processes import HOLDER, expect, finish, spawn, tell
from tests.unit.cli.seed import BUCKET, seed

CCSTATE = Path(sys.executable).with_name("ccstate")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CCSTATE), *args], capture_output=True, text=True, env=env, timeout=180
    )


@pytest.fixture
def env(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        **sandbox.env(),
        "HOME": str(tmp_path / "home"),
        "CCSTATE_BACKEND": str(tmp_path / "state"),
    }


def json_of(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_import_records_a_bucket_made_outside_ccstate_and_rm_forgets_it(
    sandbox: Sandbox, env: dict[str, str]
) -> None:
    s3 = boto3.client("s3", **_client_args(sandbox))
    name = f"adopted-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})

    imported = json_of(
        run(env, "import", "AWS::S3::Bucket", name, "--reason", "made by hand", "--output", "json")
    )
    assert (imported["operation"], imported["serial"], imported["region"]) == (
        "import",
        1,
        "us-east-1",
    )
    assert imported["properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    listed = json_of(run(env, "state", "list", "--output", "json"))
    assert [r["identifier"] for r in listed["resources"]] == [name]

    again = run(env, "import", "AWS::S3::Bucket", name, "--reason", "twice")
    assert again.returncode == 2 and "already in the state" in again.stderr

    s3.delete_bucket(Bucket=name)  # deleted outside ccstate
    forgotten = json_of(
        run(env, "state", "rm", name, "--reason", "deleted in the console", "--output", "json")
    )
    assert (forgotten["operation"], forgotten["serial"]) == ("forget", 2)
    assert json_of(run(env, "state", "list", "--output", "json"))["resources"] == []
    history = json_of(run(env, "state", "history", name, "--output", "json"))["entries"]
    assert [(e["operation"], e["user_intent"]) for e in history] == [
        ("import", "made by hand"),
        ("forget", "deleted in the console"),
    ]


def test_import_of_a_missing_resource_and_rm_of_an_unknown_one_say_so(
    env: dict[str, str],
) -> None:
    missing = run(env, "import", "AWS::S3::Bucket", "no-such-bucket-x1", "--reason", "r")
    assert missing.returncode == 3, missing.stderr
    assert "no-such-bucket-x1" in missing.stderr
    unknown = run(env, "state", "rm", "never-there", "--reason", "r")
    assert unknown.returncode == 3 and "nothing to forget" in unknown.stderr
    no_reason = run(env, "state", "rm", "never-there")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr


def test_waiting_for_a_lock_says_so_on_stderr(tmp_path: Path, env: dict[str, str]) -> None:
    backend = seed(tmp_path / "seeded")
    env = {**env, "CCSTATE_BACKEND": str(backend)}
    holder = spawn(HOLDER, backend, "default", BUCKET, "teammate", 60, tmp_path / "order.log")
    try:
        expect(holder, "WAITING")
        expect(holder, "ACQUIRED")
        blocked = run(env, "state", "rm", BUCKET, "--reason", "gone", "--lock-timeout", "2")
        tell(holder, "release")
        expect(holder, "RELEASED")
    finally:
        finish(holder)
    assert blocked.returncode == 6, blocked.stderr
    assert "Acquiring state lock" in blocked.stderr
    assert blocked.stderr.index("Acquiring state lock") < blocked.stderr.index("Error:")


def _client_args(sandbox: Sandbox) -> dict[str, str]:
    return {
        "endpoint_url": sandbox.endpoint_url,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
