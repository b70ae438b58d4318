"""SecurityScanner on checkov, in its own virtualenv, run as a long-lived worker.

checkov pins older versions of packages this project uses (boto3 among them), so it lives in a
virtualenv of its own: ``ccstate scanner install`` makes one under ``$CCSTATE_HOME/scanner``
(default ``~/.aws/ccapi-mcp-server/scanner``); ``make install`` makes ``.venv-checkov`` beside
the project's ``.venv``. A scan is sent to one checkov process that imported checkov once
(``checkov_worker.py``, started on the first scan and again if it dies), so a warm scan costs
the scan and not checkov's start-up of several seconds.

Where checkov is looked for, first found wins: ``checkov_path``, ``$CCSTATE_CHECKOV``, the
scanner home, ``.venv-checkov`` beside this Python's virtualenv, ``checkov`` on PATH or next to
this Python, then checkov importable by this Python. A ``checkov`` whose virtualenv holds the
checkov package runs as a worker; any other executable runs once per scan as ``checkov -f``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccstate.service.changes.scanning import INSTALL_HINT, ScanResult, completed_result

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 180.0
LOGICAL_ID = "Resource"
# What `ccstate scanner install` and `make install` put in checkov's virtualenv (the Makefile
# repeats it; a test keeps the two equal).
CHECKOV_REQUIREMENT = "checkov>=3.2,<4"
WORKER_SCRIPT = Path(__file__).with_name("checkov_worker.py")
_WORKER_ENV = {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_BANNER": "1"}


@dataclass(frozen=True)
class Checkov:
    """How to run checkov here: as a worker under ``python``, or once per scan as ``command``."""

    command: tuple[str, ...]
    python: str | None = None

    @property
    def location(self) -> str:
        return self.python or self.command[0]


def scanner_home(env: dict[str, str] | None = None) -> Path:
    """Where ``ccstate scanner install`` puts checkov's virtualenv."""
    env = os.environ if env is None else env
    base = env.get("CCSTATE_HOME") or os.path.join("~", ".aws", "ccapi-mcp-server")
    return Path(base).expanduser() / "scanner"


def find_checkov(explicit: str | None = None) -> list[str] | None:
    """The command that runs checkov once, or None when it is not installed."""
    found = locate_checkov(explicit)
    return list(found.command) if found else None


def locate_checkov(explicit: str | None = None) -> Checkov | None:
    for candidate in (explicit, os.environ.get("CCSTATE_CHECKOV")):
        if candidate:
            path = shutil.which(candidate)
            return _from_executable(path) if path else None
    for venv in (scanner_home(), Path(sys.prefix).with_name(".venv-checkov")):
        found = _from_executable(str(venv / "bin" / "checkov"))
        if found and found.python:
            return found
    beside_python = Path(sys.executable).with_name("checkov")
    on_path = shutil.which("checkov") or (str(beside_python) if beside_python.exists() else None)
    if on_path:
        return _from_executable(on_path)
    if importlib.util.find_spec("checkov") is not None:
        return Checkov((sys.executable, "-m", "checkov.main"), python=sys.executable)
    return None


def _from_executable(path: str) -> Checkov | None:
    executable = Path(path)
    if not (executable.is_file() and os.access(executable, os.X_OK)):
        return None
    bin_dir = executable.resolve().parent
    python = bin_dir / "python"
    has_package = any((bin_dir.parent / "lib").glob("python3*/site-packages/checkov/main.py"))
    return Checkov((str(executable),), python=str(python) if has_package else None)


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
        self._worker: _Worker | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def available(self) -> bool:
        return locate_checkov(self._explicit) is not None

    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        found = locate_checkov(self._explicit)
        if found is None:
            return unavailable(
                f"checkov is not installed: run `{INSTALL_HINT}` (it makes checkov a "
                "virtualenv of its own), or set SECURITY_SCANNING=disabled to skip scanning "
                "and record 'not scanned'."
            )
        template = template_for(resource_type, properties)
        if found.python is None:
            return await self._scan_once(found.command, template)
        return await self._scan_in_worker(found.python, template)

    async def warm_up(self) -> None:
        """Start the worker now, so that the first scan does not wait for checkov's import."""
        found = locate_checkov(self._explicit)
        if found is not None and found.python is not None:
            async with self._worker_lock():
                await self._running_worker(found.python)

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None

    # ------------------------------------------------------------------ the worker

    def _worker_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop: the old one's pipes are gone
            if self._worker is not None:
                self._worker.kill()
            self._worker, self._lock, self._loop = None, asyncio.Lock(), loop
        assert self._lock is not None
        return self._lock

    async def _scan_in_worker(self, python: str, template: dict[str, Any]) -> ScanResult:
        async with self._worker_lock():
            for attempt in (1, 2):  # a worker that died is restarted once
                try:
                    worker = await self._running_worker(python)
                    answer = await asyncio.wait_for(worker.scan(template), self._timeout)
                except TimeoutError:
                    await self._discard_worker()
                    return unavailable(
                        f"checkov did not finish within {self._timeout:.0f} s; "
                        "nothing was authorized."
                    )
                except WorkerFailed as exc:
                    await self._discard_worker()
                    if attempt == 2 or not exc.restartable:
                        return unavailable(f"the checkov worker failed: {exc}")
                    log.warning("checkov worker stopped (%s); starting another", exc)
                    continue
                if "error" in answer:
                    return unavailable(f"checkov could not scan the template: {answer['error']}")
                return parse_report(json.dumps(answer.get("report")), "", 0)
        raise AssertionError("unreachable")

    async def _running_worker(self, python: str) -> _Worker:
        if self._worker is None or not self._worker.alive or self._worker.python != python:
            await self._discard_worker()
            self._worker = await asyncio.wait_for(_Worker.start(python), self._timeout)
        return self._worker

    async def _discard_worker(self) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            await worker.stop(grace=0)

    # ------------------------------------------------------------------ one process per scan

    async def _scan_once(self, command: tuple[str, ...], template: dict[str, Any]) -> ScanResult:
        with tempfile.TemporaryDirectory(prefix="ccstate-scan-") as workdir:
            path = Path(workdir) / "template.json"
            _write_private(path, template)
            returncode, out, err = await self._run(list(command), path)
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
            env={**os.environ, **_WORKER_ENV},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=self._timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return None, "", ""
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


class WorkerFailed(Exception):
    def __init__(self, message: str, *, restartable: bool = True) -> None:
        super().__init__(message)
        self.restartable = restartable


class _Worker:
    """One ``checkov_worker.py`` process and its pipes; one scan at a time (the caller locks)."""

    def __init__(self, python: str, proc: asyncio.subprocess.Process, version: str) -> None:
        self.python = python
        self.version = version
        self._proc = proc
        self._next_id = 0

    @classmethod
    async def start(cls, python: str) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            python,
            str(WORKER_SCRIPT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, **_WORKER_ENV},
            limit=64 * 1024 * 1024,  # a report of many checks is one long line
            start_new_session=True,  # Ctrl-C in a terminal goes to ccstate, which ends it
        )
        try:
            hello = await _read_message(proc)
            if not hello.get("ready"):
                raise WorkerFailed(
                    f"checkov did not start under {python}: {hello.get('error')}",
                    restartable=False,
                )
        except BaseException:
            await _Worker(python, proc, "").stop(grace=0)
            raise
        log.info("checkov %s worker started (pid %d)", hello.get("version"), proc.pid)
        return cls(python, proc, str(hello.get("version", "")))

    @property
    def alive(self) -> bool:
        return self._proc.returncode is None

    async def scan(self, template: dict[str, Any]) -> dict[str, Any]:
        self._next_id += 1
        request = json.dumps({"id": self._next_id, "template": template}) + "\n"
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(request.encode())
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WorkerFailed("its input pipe is closed") from exc
        answer = await _read_message(self._proc)
        if answer.get("id") != self._next_id:
            raise WorkerFailed(f"it answered request {answer.get('id')}, not {self._next_id}")
        return answer

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGKILL)

    async def stop(self, grace: float = 5) -> None:
        """Close its input (it exits on EOF); kill it if it has not after ``grace`` seconds."""
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), grace or 0.001)
        except TimeoutError:
            self.kill()
            await self._proc.wait()


async def _read_message(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        code = await proc.wait()
        raise WorkerFailed(f"it exited (code {code})")
    try:
        message = json.loads(line)
    except json.JSONDecodeError as exc:
        raise WorkerFailed(f"it wrote something that is not JSON: {line[:200]!r}") from exc
    if not isinstance(message, dict):
        raise WorkerFailed("it wrote something that is not a JSON object")
    return message


# --------------------------------------------------------------------------- install


def install_scanner(target: Path | None = None, *, python: str | None = None) -> Checkov:
    """Make ``target`` (default: the scanner home) a virtualenv with checkov in it; pip's output
    goes to this process's stderr. Safe to run again: pip then changes nothing."""
    target = target or scanner_home()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    venv_python = target / "bin" / "python"
    if not venv_python.exists():
        subprocess.run([python or sys.executable, "-m", "venv", str(target)], check=True)
    subprocess.run(
        [str(venv_python), "-m", "pip", "install", "--quiet", CHECKOV_REQUIREMENT],
        check=True,
        stdout=sys.stderr,
    )
    found = _from_executable(str(target / "bin" / "checkov"))
    if found is None or found.python is None:
        raise RuntimeError(f"pip installed no checkov into {target}")
    return found


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
