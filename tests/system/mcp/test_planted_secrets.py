"""Secrets planted in ordinary properties (not write-only ones) reach no state file, export, pull
output, drift report, MCP answer or ``-vv`` log, while the identifiers and settings beside them
stay readable and drift is still found through the fingerprints.

The planted values: an SSM String parameter holding a password, a Lambda environment with a
password inside a ``DATABASE_URL`` and a ``PIN``; then both are changed out of band.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from ccstate.sandbox import Sandbox

from tests.system.mcp.conftest import ServerFactory
from tests.system.mcp.harness import McpSession, aws_kwargs

ROOT = Path(__file__).resolve().parents[3]
PARAMETER = "AWS::SSM::Parameter"
FUNCTION = "AWS::Lambda::Function"
SUFFIX = uuid.uuid4().hex[:8]
PASSWORD = f"Hunter2-P@ssw0rd-{SUFFIX}"
NEW_PASSWORD = f"Swordfish-9!{SUFFIX}"
DB_PASSWORD = f"pgpass-{SUFFIX}"
DATABASE_URL = f"postgres://app:{DB_PASSWORD}@db.internal.example:5432/orders"
PIN = "730519"
NEW_PIN = "284613"
PLANTED = (PASSWORD, NEW_PASSWORD, DB_PASSWORD, PIN, NEW_PIN)
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def leaks(text: str) -> list[str]:
    """The planted values found in ``text``; a PIN counts where it stands as a number."""
    found = [s for s in PLANTED if not s.isdigit() and s in text]
    found += [s for s in PLANTED if s.isdigit() and re.search(rf"(?<![0-9a-fA-F]){s}(?!\d)", text)]
    return found


def all_files(folder: Path) -> str:
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


@pytest.fixture(scope="module")
def planted_dir(module_dir: Path) -> Path:
    path = module_dir / "planted-state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture(scope="module")
def verbose_server(start_server: ServerFactory, planted_dir: Path) -> McpSession:
    return start_server(planted_dir, "-vv", name="planted")


def ccstate(
    sandbox: Sandbox, backend: Path, *args: str, home: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "SECURITY_SCANNING": "disabled",
        "CCSTATE_BACKEND": backend.as_uri(),
        **sandbox.env(),
    }
    return subprocess.run(
        [sys.executable, "-m", "ccstate", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def create(server: McpSession, resource_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    tokens = server.prepare(resource_type=resource_type, properties=properties)
    return server.ok("create_resource", resource_type=resource_type, **tokens)


def test_planted_secrets_reach_no_file_answer_report_or_log(
    sandbox: Sandbox, verbose_server: McpSession, planted_dir: Path, module_dir: Path
) -> None:
    server = verbose_server
    aws = aws_kwargs(sandbox.env())
    role = boto3.client("iam", **aws).create_role(
        RoleName=f"planted-{SUFFIX}", AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]
    parameter = create(
        server,
        PARAMETER,
        {"Name": f"/orders/{SUFFIX}/main", "Type": "String", "Value": PASSWORD},
    )
    function_name = f"orders-{SUFFIX}"
    function = create(
        server,
        FUNCTION,
        {
            "FunctionName": function_name,
            "Role": role,
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"},
            "Environment": {
                "Variables": {"DATABASE_URL": DATABASE_URL, "PIN": PIN, "LOG_LEVEL": "info"}
            },
        },
    )
    answers = [parameter, function]
    for resource_type, identifier in (
        (PARAMETER, parameter["identifier"]),
        (FUNCTION, function_name),
    ):
        answers.append(
            server.ok("get_resource", resource_type=resource_type, identifier=identifier)
        )
    answers.append(server.ok("load_state"))
    answers.append(server.ok("show_resource_history", identifier=function_name))

    # Out of band: a new password and a new PIN, so the drift report has secrets to show.
    boto3.client("ssm", **aws).put_parameter(
        Name=f"/orders/{SUFFIX}/main", Value=NEW_PASSWORD, Type="String", Overwrite=True
    )
    boto3.client("lambda", **aws).update_function_configuration(
        FunctionName=function_name,
        Environment={
            "Variables": {"DATABASE_URL": DATABASE_URL, "PIN": NEW_PIN, "LOG_LEVEL": "info"}
        },
    )
    home = module_dir / "home-cli"
    home.mkdir(exist_ok=True)
    drift = ccstate(sandbox, planted_dir, "drift", "-vv", "--output", "json", home=home)
    assert drift.returncode == 0, drift.stderr[-3000:]
    report = json.loads(drift.stdout)
    assert sorted(report["drifted"]) == sorted([parameter["identifier"], function_name])
    answers.append(server.ok("detect_drift"))
    pulled_file = module_dir / "pulled.json"
    pull = ccstate(sandbox, planted_dir, "state", "pull", "-vv", home=home)
    pull_to_file = ccstate(sandbox, planted_dir, "state", "pull", str(pulled_file), home=home)
    assert pull.returncode == 0 and pull_to_file.returncode == 0, pull.stderr[-3000:]

    server_log = (module_dir / "planted.stderr.log").read_text()

    places = {
        "state files and state.json export": all_files(planted_dir),
        "state pull (stdout)": pull.stdout,
        "state pull (file)": pulled_file.read_text(),
        "drift --output json": drift.stdout,
        "drift -vv log": drift.stderr,
        "pull -vv log": pull.stderr,
        "MCP answers": json.dumps(answers),
        "ccstate serve -vv log": server_log,
    }
    found = {where: leaks(text) for where, text in places.items() if leaks(text)}
    assert found == {}
    # The -vv logs really hold the bodies (with the secrets replaced), so the grep means something.
    assert "DEBUG" in server_log and "DesiredState" in server_log
    assert "ccstate:redacted" in server_log and "ccstate:redacted" in drift.stderr
    assert "DEBUG" in drift.stderr and "ResourceDescription" in drift.stderr

    # No false positives: what drift and the graph need stays readable.
    state = json.loads(pull.stdout)
    by_id = {r["identifier"]: r for r in state["resources"].values()}
    lambda_props = by_id[function_name]["current_properties"]
    assert lambda_props["Role"] == role
    assert lambda_props["Arn"].startswith("arn:aws:lambda:")
    assert lambda_props["Handler"] == "index.handler"
    assert lambda_props["Environment"]["Variables"]["LOG_LEVEL"] == "info"
    assert set(lambda_props["Environment"]["Variables"]["PIN"]) == {"ccstate:redacted"}
    ssm_props = by_id[parameter["identifier"]]["current_properties"]
    assert ssm_props["Name"] == f"/orders/{SUFFIX}/main" and ssm_props["Type"] == "String"
    assert set(ssm_props["Value"]) == {"ccstate:redacted"}


def test_a_lambda_function_can_be_updated(sandbox: Sandbox, verbose_server: McpSession) -> None:
    """Code is write-only and never read back; the update's check must not require it."""
    server = verbose_server
    aws = aws_kwargs(sandbox.env())
    role = boto3.client("iam", **aws).create_role(
        RoleName=f"update-{SUFFIX}", AssumeRolePolicyDocument=json.dumps(TRUST)
    )["Role"]["Arn"]
    name = f"update-{SUFFIX}"
    create(
        server,
        FUNCTION,
        {
            "FunctionName": name,
            "Role": role,
            "Runtime": "python3.12",
            "Handler": "index.handler",
            "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"},
            "MemorySize": 128,
        },
    )
    patch = [{"op": "replace", "path": "/MemorySize", "value": 512}]
    tokens = server.prepare(resource_type=FUNCTION, identifier=name, patch_document=patch)
    server.ok("update_resource", resource_type=FUNCTION, identifier=name, **tokens)
    config = boto3.client("lambda", **aws).get_function_configuration(FunctionName=name)
    assert config["MemorySize"] == 512
