"""The real checkov, in its own virtualenv, as one long-lived worker process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ccstate.backends.checkov_scanner import CHECKOV_REQUIREMENT, CheckovScanner

from tests.checkov_support import FOUND, requires_checkov

REPO = Path(__file__).resolve().parents[2]
CCSTATE = Path(sys.executable).with_name("ccstate")
BARE_BUCKET = {"BucketName": "bare"}
PRIVATE_BUCKET = {
    "BucketName": "private-demo",
    "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    },
    "VersioningConfiguration": {"Status": "Enabled"},
    "BucketEncryption": {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}
        ]
    },
    "LoggingConfiguration": {"DestinationBucketName": "logs"},
}


def worker_pid(scanner: CheckovScanner) -> int:
    assert scanner._worker is not None
    return scanner._worker._proc.pid


@requires_checkov
async def test_one_worker_serves_many_scans_with_checkovs_verdicts() -> None:
    assert FOUND is not None and FOUND.python, "make install's checkov runs as a worker"
    scanner = CheckovScanner()
    try:
        bare = await scanner.scan("AWS::S3::Bucket", BARE_BUCKET)
        first_pid = worker_pid(scanner)
        private = await scanner.scan("AWS::S3::Bucket", PRIVATE_BUCKET)
        queue = await scanner.scan("AWS::SQS::Queue", {"QueueName": "q"})
        assert worker_pid(scanner) == first_pid
    finally:
        await scanner.close()
    assert bare.status == "FAILED" and "CKV_AWS_21" in {c["id"] for c in bare.failed_checks}
    assert bare.scanner.startswith("checkov 3.")
    assert private.status == "PASSED" and private.passed > 0
    assert queue.status in {"PASSED", "FAILED"} and queue.passed + queue.failed > 0


@requires_checkov
async def test_a_worker_that_dies_is_replaced() -> None:
    scanner = CheckovScanner()
    try:
        await scanner.scan("AWS::S3::Bucket", BARE_BUCKET)
        dead = worker_pid(scanner)
        os.kill(dead, signal.SIGKILL)
        again = await scanner.scan("AWS::S3::Bucket", BARE_BUCKET)
        assert worker_pid(scanner) != dead
    finally:
        await scanner.close()
    assert again.status == "FAILED" and again.failed > 0


async def test_a_virtualenv_without_a_working_checkov_authorizes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looks like checkov's virtualenv, but its Python cannot import checkov.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    package = tmp_path / "lib" / "python3.11" / "site-packages" / "checkov"
    package.mkdir(parents=True)
    (package / "main.py").write_text("")
    checkov = tmp_path / "bin" / "checkov"
    checkov.write_text("#!/bin/sh\nexit 3\n")
    checkov.chmod(0o755)
    monkeypatch.setenv("CCSTATE_CHECKOV", str(checkov))

    result = await CheckovScanner().scan("AWS::S3::Bucket", BARE_BUCKET)

    assert result.status == "UNAVAILABLE" and not result.authorizes_execution
    assert "checkov did not start" in result.message


@requires_checkov
def test_scanner_status_finds_make_installs_checkov() -> None:
    result = subprocess.run(
        [str(CCSTATE), "scanner", "status", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["mode"] == "worker" and status["sample_scan"] == "FAILED"


def test_makefile_installs_the_same_checkov_as_the_scanner_install_command() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(rf"^CHECKOV_SPEC\s*:=\s*{re.escape(CHECKOV_REQUIREMENT)}$", makefile, re.M)
