"""The installed ``ccstate`` console script against S3 + DynamoDB + KMS (moto over HTTP, or the
endpoint in AWS_ENDPOINT_URL): bootstrap, push, versions, migrate, lock list, force-unlock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.integration.s3.conftest import WORKERS, clean_up

CCSTATE = Path(sys.executable).with_name("ccstate")
REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "docs" / "examples" / "seed-state.json"


@dataclass(frozen=True)
class Team:
    endpoint: str
    bucket: str
    table: str
    kms_key: str
    first_run: dict
    env: dict[str, str]

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}?table={self.table}&kms_key={self.kms_key}"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CCSTATE), *args], capture_output=True, text=True, env=env, timeout=120
    )


def ok_json(env: dict[str, str], *args: str) -> dict:
    result = run(env, *args, "--output", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def cli_env(endpoint: str, home: Path) -> dict[str, str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "HOME": str(home)}
    env.pop("CCSTATE_BACKEND", None)
    if not os.environ.get("CCSTATE_TEST_REAL_AWS"):
        env.update(
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_SESSION_TOKEN="testing",
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
        )
        env.pop("AWS_PROFILE", None)
    return env


@pytest.fixture(scope="module")
def team(aws_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A bucket, table and key created by `ccstate bootstrap` itself."""
    env = cli_env(aws_endpoint, tmp_path_factory.mktemp("cli-s3-home"))
    bucket = f"ccstate-cli-{uuid.uuid4().hex[:12]}"
    table = f"ccstate-cli-locks-{uuid.uuid4().hex[:8]}"
    report = ok_json(env, "bootstrap", "--bucket", bucket, "--table", table)
    try:
        yield Team(aws_endpoint, bucket, table, report["kms_key"], report, env)
    finally:
        clean_up(aws_endpoint, bucket, table, report["kms_key"])


def test_bootstrap_creates_everything_once_and_then_changes_nothing(team: Team) -> None:
    first = team.first_run
    assert first["changed"] and first["verified"]["conditional_writes"]
    assert first["verified"]["versioning"] == "Enabled"

    again = run(team.env, "backend", "bootstrap", "--bucket", team.bucket, "--table", team.table)

    assert again.returncode == 0, again.stderr
    assert "Nothing to change" in again.stdout
    assert f"CCSTATE_BACKEND='s3://{team.bucket}/" in again.stdout


def test_push_versions_and_migrate_to_a_local_directory(team: Team, tmp_path: Path) -> None:
    env = {**team.env, "CCSTATE_BACKEND": team.url("team-a")}
    pushed = ok_json(env, "state", "push", str(SEED), "--reason", "first import")
    assert pushed["serial"] == 1

    versions = ok_json(env, "state", "versions")
    assert versions["head"] == 1
    assert [(v["serial"], v["kind"], v["why"]) for v in versions["versions"]] == [
        (1, "import", "first import")
    ]

    target = tmp_path / "local-copy"
    report = ok_json(env, "state", "migrate", "--to", f"file://{target}")
    assert (report["serial"], report["serials_verified"]) == (1, 1)
    assert report["source"] == f"s3://{team.bucket}/team-a"

    local = ok_json(team.env, "state", "list", "--backend", str(target))
    remote = ok_json(env, "state", "list")
    assert local["resources"] == remote["resources"]
    assert [r["identifier"] for r in local["resources"]] == ["my-bucket"]
    assert ok_json(env, "lock", "list")["locks"] == []  # the migration released its lock


def test_lock_list_and_force_unlock_a_crashed_holder(team: Team) -> None:
    env = {**team.env, "CCSTATE_BACKEND": team.url("team-b")}
    holder = subprocess.Popen(
        [
            sys.executable,
            str(WORKERS / "hold_lock.py"),
            team.bucket,
            "team-b",
            team.table,
            team.kms_key,
            "default",
            "300",
        ],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=team.env,
        text=True,
    )
    try:
        held = json.loads(holder.stdout.readline())
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

    [listed] = ok_json(env, "lock", "list")["locks"]
    assert (listed["id"], listed["pid"], listed["expired"]) == (held["id"], holder.pid, False)
    table = run(env, "lock", "list")
    assert held["id"] in table.stdout

    blocked = run(env, "state", "push", str(SEED), "--lock-timeout", "0")
    assert blocked.returncode != 0
    assert f"ccstate lock force-unlock {held['id']}" in blocked.stderr

    unlocked = ok_json(env, "lock", "force-unlock", held["id"])
    assert unlocked["unlocked"]["id"] == held["id"]
    assert ok_json(env, "lock", "list")["locks"] == []
    assert ok_json(env, "state", "push", str(SEED))["serial"] == 1


def test_bootstrap_reads_the_region_from_aws_region_alone(
    aws_endpoint: str, tmp_path: Path
) -> None:
    # docs/backends.md's LocalStack recipe exports AWS_REGION only, as the AWS CLI v2 allows.
    env = cli_env(aws_endpoint, tmp_path)
    if os.environ.get("CCSTATE_TEST_REAL_AWS"):
        pytest.skip("creates a bucket in eu-west-1")
    env.pop("AWS_DEFAULT_REGION")
    env["AWS_REGION"] = "eu-west-1"
    bucket, table = (
        f"ccstate-region-{uuid.uuid4().hex[:12]}",
        f"ccstate-region-{uuid.uuid4().hex[:8]}",
    )
    result = run(env, "bootstrap", "--bucket", bucket, "--table", table, "--output", "json")
    try:
        assert result.returncode == 0, result.stderr
        s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="eu-west-1")
        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    finally:
        if result.returncode == 0:
            clean_up(aws_endpoint, bucket, table, json.loads(result.stdout)["kms_key"])
