"""Security scanning gates execution; two servers share one backend and one token space."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import boto3
import pytest
from ccstate.sandbox import Sandbox

from tests.system.mcp.conftest import ServerFactory
from tests.system.mcp.harness import McpSession, aws_kwargs

S3 = "AWS::S3::Bucket"
FAKE_CHECKOV = Path(__file__).with_name("fake_checkov.py")


@pytest.fixture(scope="module")
def checkov(module_dir: Path) -> Path:
    """An executable `checkov` stand-in (checkov itself is an optional extra)."""
    script = module_dir / "checkov"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE_CHECKOV} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture(scope="module")
def scanning(start_server: ServerFactory, module_dir: Path, checkov: Path) -> McpSession:
    backend = module_dir / "scanned-state"
    backend.mkdir(mode=0o700)
    return start_server(
        backend, name="scanning", SECURITY_SCANNING="enabled", CCSTATE_CHECKOV=str(checkov)
    )


def _explained(session: McpSession, **generate: object) -> tuple[str, str]:
    credentials = session.credentials()
    generated = session.ok(
        "generate_infrastructure_code", credentials_token=credentials, **generate
    )
    explained = session.ok("explain", generated_code_token=generated["generated_code_token"])
    return credentials, explained["explained_token"]


def test_a_failed_scan_authorizes_nothing(scanning: McpSession, sandbox: Sandbox) -> None:
    credentials, explained = _explained(
        scanning, resource_type=S3, properties={"BucketName": "unversioned"}
    )

    scan = scanning.ok("run_checkov", explained_token=explained)

    assert scan["scan_status"] == "FAILED"
    assert scan["checkov_results"]["failed_checks"][0]["id"] == "CKV_AWS_21"
    refused = scanning.call(
        "create_resource",
        resource_type=S3,
        credentials_token=credentials,
        explained_token=explained,
    )
    assert refused.error == "token_error"
    # The FAILED scan's token is for approve_security_findings only: it authorizes nothing.
    unapproved = scanning.call(
        "create_resource",
        resource_type=S3,
        credentials_token=credentials,
        explained_token=explained,
        security_scan_token=scan["security_scan_token"],
    )
    assert unapproved.error == "token_error"
    assert unapproved.check == "findings_not_accepted"
    forged = scanning.call(
        "create_resource",
        resource_type=S3,
        credentials_token=credentials,
        explained_token=explained,
        security_scan_token=explained,
    )
    assert forged.error == "token_error"
    assert forged.check == "wrong_type"
    buckets = boto3.client("s3", **aws_kwargs(sandbox.env())).list_buckets()["Buckets"]
    assert "unversioned" not in [b["Name"] for b in buckets]


def test_a_passed_scan_is_recorded_in_the_lineage(scanning: McpSession) -> None:
    properties = {"BucketName": "versioned", "VersioningConfiguration": {"Status": "Enabled"}}
    credentials, explained = _explained(scanning, resource_type=S3, properties=properties)
    scan = scanning.ok("run_checkov", explained_token=explained)
    assert scan["scan_status"] == "PASSED"

    scanning.ok(
        "create_resource",
        resource_type=S3,
        credentials_token=credentials,
        explained_token=explained,
        security_scan_token=scan["security_scan_token"],
    )

    entry = scanning.ok("show_resource_history", identifier="versioned")["entries"][0]
    assert entry["checkov_results"]["status"] == "PASSED"
    assert entry["checkov_results"]["passed"] == 1


def test_without_checkov_the_scan_says_how_to_install_it(
    start_server: ServerFactory, module_dir: Path
) -> None:
    backend = module_dir / "no-checkov-state"
    backend.mkdir(mode=0o700)
    session = start_server(
        backend,
        name="no-checkov",
        SECURITY_SCANNING="enabled",
        CCSTATE_CHECKOV=str(module_dir / "missing-checkov"),
    )
    _, explained = _explained(session, resource_type=S3, properties={"BucketName": "nochk"})

    scan = session.ok("run_checkov", explained_token=explained)

    assert scan["scan_status"] == "UNAVAILABLE"
    assert "ccstate scanner install" in scan["next_step"]
    assert "security_scan_token" not in scan


def test_a_token_is_accepted_once_across_two_servers(
    start_server: ServerFactory, module_dir: Path, sandbox: Sandbox
) -> None:
    shared = module_dir / "shared-state"
    shared.mkdir(mode=0o700)
    first = start_server(shared, name="first")
    second = start_server(shared, name="second")
    tokens = first.prepare(resource_type=S3, properties={"BucketName": "shared-bucket"})

    accepted = second.call("create_resource", resource_type=S3, **tokens)
    replayed = first.call("create_resource", resource_type=S3, **tokens)

    assert accepted.ok, accepted.data
    assert replayed.error == "token_error"
    assert replayed.check == "consumed"
    history = first.ok("show_resource_history", identifier="shared-bucket")["entries"]
    assert [e["operation"] for e in history] == ["create"]
    assert os.listdir(shared)
