"""SecurityScanner on checkov, run as a subprocess on a one-resource CloudFormation template.

checkov is found as ``checkov_path``, else ``$CCSTATE_CHECKOV``, else ``checkov`` on PATH or
next to this Python, else ``python -m checkov.main`` when the package is importable. checkov
may live in its own virtualenv (``pipx install checkov``): it pins old versions of packages
this project uses, so a separate environment is the conflict-free way to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ccstate.service.changes.scanning import INSTALL_HINT, ScanResult, completed_result

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 180.0
LOGICAL_ID = "Resource"


def find_checkov(explicit: str | None = None) -> list[str] | None:
    """The command that runs checkov here, or None when it is not installed."""
    for candidate in (explicit, os.environ.get("CCSTATE_CHECKOV")):
        if candidate:
            found = shutil.which(candidate)
            return [found] if found else None
    beside_python = Path(sys.executable).with_name("checkov")
    on_path = shutil.which("checkov") or (str(beside_python) if beside_python.exists() else None)
    if on_path:
        return [on_path]
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    return None


def template_for(resource_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {LOGICAL_ID: {"Type": resource_type, "Properties": properties}},
    }


class CheckovScanner:
    def __init__(
        self, *, checkov_path: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._explicit = checkov_path
        self._timeout = timeout

    @property
    def available(self) -> bool:
        return find_checkov(self._explicit) is not None

    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        command = find_checkov(self._explicit)
        if command is None:
            return unavailable(
                f"checkov is not installed: run {INSTALL_HINT} (or `pipx install checkov`), "
                "or set SECURITY_SCANNING=disabled to skip scanning and record 'not scanned'."
            )
        with tempfile.TemporaryDirectory(prefix="ccstate-scan-") as workdir:
            template = Path(workdir) / "template.json"
            _write_private(template, template_for(resource_type, properties))
            returncode, out, err = await self._run(command, template)
        if returncode is None:
            return unavailable(
                f"checkov did not finish within {self._timeout:.0f} s; nothing was authorized.",
            )
        return parse_report(out, err, returncode)

    async def _run(self, command: list[str], template: Path) -> tuple[int | None, str, str]:
        args = [
            *command,
            "-f",
            str(template),
            "--framework",
            "cloudformation",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
        ]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(template.parent),
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_BANNER": "1"},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=self._timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return None, "", ""
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _write_private(path: Path, document: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)


def unavailable(message: str) -> ScanResult:
    return ScanResult(status="UNAVAILABLE", message=message, scanner="checkov")


def parse_report(stdout: str, stderr: str, returncode: int) -> ScanResult:
    """checkov's ``-o json`` report as a ScanResult; anything unreadable authorizes nothing."""
    try:
        report = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        report = None
    if report is None:
        detail = (stderr.strip().splitlines() or [f"exit code {returncode}"])[-1]
        return unavailable(f"checkov produced no readable report ({detail}).")
    reports = report if isinstance(report, list) else [report]
    passed = 0
    failed: list[dict[str, Any]] = []
    for part in reports:
        summary = part.get("summary", part)
        if summary.get("parsing_errors"):
            return unavailable("checkov could not parse the generated template.")
        results = part.get("results", {})
        passed += len(results.get("passed_checks", [])) or int(summary.get("passed", 0))
        failed += [_failed_check(check) for check in results.get("failed_checks", [])]
    version = reports[0].get("summary", {}).get("checkov_version", "")
    scanner = f"checkov {version}".strip()
    message = "" if failed else "No check failed."
    return completed_result(passed, failed, scanner=scanner, message=message)


def _failed_check(check: dict[str, Any]) -> dict[str, Any]:
    keys = (check.get("check_result") or {}).get("evaluated_keys") or []
    return {
        "id": check.get("check_id", ""),
        "name": check.get("check_name", ""),
        "severity": check.get("severity"),
        "path": _property_path(keys[0]) if keys else "/",
        "guideline": check.get("guideline"),
    }


def _property_path(evaluated_key: str) -> str:
    """'Properties/PublicAccessBlockConfiguration/BlockPublicAcls' -> '/Public.../Block...'."""
    parts = [p for p in evaluated_key.replace(".", "/").split("/") if p and p != "[]"]
    if parts and parts[0] == "Properties":
        parts = parts[1:]
    return "/" + "/".join(parts)
