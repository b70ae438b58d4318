"""A long-lived checkov: imports checkov once, then scans templates sent over stdin.

Run by the Python of checkov's own virtualenv (``<venv>/bin/python checkov_worker.py``), so it
imports nothing from ccstate and only the standard library besides checkov. Protocol, one JSON
object per line:

- on start: ``{"ready": true, "version": "3.3.30"}`` (or ``{"ready": false, "error": "..."}``);
- in: ``{"id": 1, "template": {...CloudFormation template...}}``;
- out: ``{"id": 1, "report": {...checkov's -o json report...}}`` or ``{"id": 1, "error": "..."}``.

It exits when stdin closes, so it never outlives the process that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from typing import Any, TextIO


def main() -> int:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    # checkov prints here and there: nothing but protocol lines may reach the protocol stream.
    sys.stdout = sys.stderr
    os.environ.setdefault("BC_SKIP_MAPPING", "TRUE")
    os.environ.setdefault("CHECKOV_NO_OUTPUT_BANNER", "1")
    try:
        scan = _load_checkov()
        from checkov.version import version
    except Exception as exc:  # checkov broken or missing: say so, and stop
        _send(protocol, {"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    _send(protocol, {"ready": True, "version": version})
    with tempfile.TemporaryDirectory(prefix="ccstate-scan-") as workdir:
        for line in sys.stdin:
            if line.strip():
                _send(protocol, _answer(line, scan, workdir))
    return 0


def _load_checkov() -> Any:
    from checkov.cloudformation.runner import Runner
    from checkov.runner_filter import RunnerFilter

    def scan(path: str) -> dict[str, Any]:
        runner_filter = RunnerFilter(framework=["cloudformation"])
        report = Runner().run(root_folder=None, files=[path], runner_filter=runner_filter)
        return report.get_dict(is_quiet=True)

    return scan


def _answer(line: str, scan: Any, workdir: str) -> dict[str, Any]:
    request_id = None
    try:
        request = json.loads(line)
        request_id = request.get("id")
        path = os.path.join(workdir, f"template-{os.getpid()}-{request_id}.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(request["template"], handle)
        try:
            return {"id": request_id, "report": scan(path)}
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
    except Exception as exc:  # one bad scan must not end the worker
        return {"id": request_id, "error": f"{type(exc).__name__}: {exc}"}


def _send(protocol: TextIO, message: dict[str, Any]) -> None:
    protocol.write(json.dumps(message, default=str) + "\n")
    protocol.flush()


if __name__ == "__main__":
    sys.exit(main())
