"""Security scanning: checkov's verdict, its absence, and scanning switched off."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from ccstate.backends.checkov_scanner import CheckovScanner, find_checkov, parse_report
from ccstate.service.changes.scanning import (
    DisabledScanner,
    ScanResult,
    SecurityScanner,
    accept_findings,
    completed_result,
    scanning_disabled,
    skipped_result,
)
from ccstate.service.errors import InvalidInput, PolicyDenied

from tests.checkov_support import requires_checkov

PUBLIC_BUCKET = {
    "BucketName": "public-demo",
    "AccessControl": "PublicRead",
    "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": False,
        "BlockPublicPolicy": False,
        "IgnorePublicAcls": False,
        "RestrictPublicBuckets": False,
    },
}
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


def fake_checkov(tmp_path: Path, script: str) -> str:
    """An executable standing in for checkov, so the subprocess path runs for real."""
    path = tmp_path / "checkov"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_both_scanners_satisfy_the_port() -> None:
    assert isinstance(CheckovScanner(), SecurityScanner)
    assert isinstance(DisabledScanner(), SecurityScanner)


async def test_missing_checkov_is_unavailable_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CCSTATE_CHECKOV", "/nonexistent/checkov")
    result = await CheckovScanner().scan("AWS::S3::Bucket", PUBLIC_BUCKET)
    assert result.status == "UNAVAILABLE"
    assert not result.authorizes_execution
    assert "ccstate scanner install" in result.message
    assert "SECURITY_SCANNING=disabled" in result.message


async def test_disabled_scanning_is_skipped_and_recorded_as_not_scanned() -> None:
    assert scanning_disabled({"SECURITY_SCANNING": "disabled"})
    assert not scanning_disabled({})
    result = await DisabledScanner().scan("AWS::S3::Bucket", PUBLIC_BUCKET)
    assert result.status == "SKIPPED"
    assert result.authorizes_execution
    assert "not scanned" in result.checkov_results()["summary"]


async def test_checkov_sees_the_resource_as_a_private_template(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    script = (
        f'for a in "$@"; do case "$a" in *template.json) cp "$a" {seen}; '
        f'stat -c %a "$a" > {seen}.mode;; esac; done\n'
        'echo \'{"passed": 0, "failed": 0, "parsing_errors": 0, "resource_count": 1}\'\n'
    )
    scanner = CheckovScanner(checkov_path=fake_checkov(tmp_path, script))
    result = await scanner.scan("AWS::S3::Bucket", PRIVATE_BUCKET)
    assert result.status == "PASSED"
    template = json.loads(seen.read_text())
    assert template["Resources"]["Resource"] == {
        "Type": "AWS::S3::Bucket",
        "Properties": PRIVATE_BUCKET,
    }
    assert Path(f"{seen}.mode").read_text().strip() == "600"


async def test_a_hung_checkov_authorizes_nothing(tmp_path: Path) -> None:
    scanner = CheckovScanner(checkov_path=fake_checkov(tmp_path, "exec sleep 30\n"), timeout=0.5)
    result = await scanner.scan("AWS::S3::Bucket", PRIVATE_BUCKET)
    assert result.status == "UNAVAILABLE"
    assert "did not finish" in result.message


def test_report_with_failed_checks_is_failed() -> None:
    report = {
        "check_type": "cloudformation",
        "results": {
            "failed_checks": [
                {
                    "check_id": "CKV_AWS_53",
                    "check_name": "Ensure S3 bucket has block public ACLs enabled",
                    "check_result": {
                        "result": "FAILED",
                        "evaluated_keys": [
                            "Properties/PublicAccessBlockConfiguration/BlockPublicAcls"
                        ],
                    },
                    "severity": None,
                    "code_block": [[1, "the whole template, secrets included"]],
                }
            ]
        },
        "summary": {"passed": 2, "failed": 1, "parsing_errors": 0, "checkov_version": "3.3.30"},
    }
    result = parse_report(json.dumps(report), "", 1)
    assert result.status == "FAILED"
    assert (result.passed, result.failed) == (2, 1)
    assert result.failed_checks[0]["path"] == "/PublicAccessBlockConfiguration/BlockPublicAcls"
    assert result.critical_issues == []  # no severity: a person may accept it, by its id
    assert result.scanner == "checkov 3.3.30"
    assert "the whole template" not in json.dumps(result.to_dict())


@pytest.mark.parametrize(
    ("stdout", "stderr"),
    [("", "Traceback ...\nModuleNotFoundError: No module named 'x'"), ("{not json", "")],
)
def test_unreadable_report_authorizes_nothing(stdout: str, stderr: str) -> None:
    result = parse_report(stdout, stderr, 2)
    assert result.status == "UNAVAILABLE"
    assert not result.authorizes_execution


def test_template_checkov_cannot_parse_authorizes_nothing() -> None:
    result = parse_report(json.dumps({"passed": 0, "failed": 0, "parsing_errors": 1}), "", 0)
    assert result.status == "UNAVAILABLE"


@pytest.mark.slow
@requires_checkov
async def test_real_checkov_fails_a_public_bucket_and_passes_a_private_one() -> None:
    scanner = CheckovScanner()
    try:
        public = await scanner.scan("AWS::S3::Bucket", PUBLIC_BUCKET)
        private = await scanner.scan("AWS::S3::Bucket", PRIVATE_BUCKET)
    finally:
        await scanner.close()
    assert public.status == "FAILED", public
    assert "CKV_AWS_53" in {c["id"] for c in public.failed_checks}
    assert not public.authorizes_execution
    assert private.status == "PASSED", private
    assert private.passed > 0


def test_find_checkov_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = fake_checkov(tmp_path, "exit 0\n")
    monkeypatch.setenv("CCSTATE_CHECKOV", path)
    assert find_checkov() == [path]
    assert os.access(path, os.X_OK)


def _failed(*checks: tuple[str, str | None]) -> ScanResult:
    return completed_result(
        3,
        [{"id": i, "name": f"check {i}", "severity": sev, "path": "/"} for i, sev in checks],
        scanner="checkov",
    )


def test_a_failed_scan_authorizes_only_once_its_findings_are_accepted() -> None:
    result = _failed(("CKV_AWS_21", None), ("CKV_AWS_18", "HIGH"))
    assert not result.authorizes_execution

    accepted = accept_findings(
        result, ["CKV_AWS_18", "CKV_AWS_21"], reason="test bucket", accepted_by="alice", at="t"
    )

    assert accepted.authorizes_execution
    recorded = accepted.checkov_results()
    assert (recorded["passed"], recorded["failed"]) == (3, 2)
    assert recorded["accepted_findings"] == {
        "checks": ["CKV_AWS_21", "CKV_AWS_18"],
        "reason": "test bucket",
        "accepted_by": "alice",
        "at": "t",
    }
    assert ScanResult.from_dict(accepted.to_dict()) == accepted


@pytest.mark.parametrize("named", [[], ["CKV_AWS_21"], ["CKV_AWS_21", "CKV_AWS_18", "CKV_X"]])
def test_an_acceptance_names_exactly_the_failed_checks(named: list[str]) -> None:
    result = _failed(("CKV_AWS_21", None), ("CKV_AWS_18", None))
    with pytest.raises(InvalidInput) as refused:
        accept_findings(result, named, reason="r", accepted_by="alice", at="t")
    assert refused.value.details["failed_checks"] == ["CKV_AWS_21", "CKV_AWS_18"]


def test_critical_findings_need_the_operators_leave() -> None:
    result = _failed(("CKV_AWS_60", "CRITICAL"))
    with pytest.raises(PolicyDenied) as refused:
        accept_findings(result, ["CKV_AWS_60"], reason="r", accepted_by="alice", at="t")
    assert "accept_critical_findings" in refused.value.next_step

    allowed = accept_findings(
        result, ["CKV_AWS_60"], reason="r", accepted_by="alice", at="t", allow_critical=True
    )
    assert allowed.accepted is not None
    assert allowed.accepted["critical_checks"] == ["CKV_AWS_60"]


def test_a_skip_by_the_caller_says_so() -> None:
    assert (
        skipped_result(by_caller=True)
        .checkov_results()["summary"]
        .startswith("not scanned: skipped by caller")
    )
    assert "skipped by caller" not in skipped_result().summary()
