"""`make demo` runs end to end: the MCP session, drift and restore, then the CLI's view."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_to_the_end_and_tells_its_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CCSTATE_"))}
    env["HOME"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "ccstate.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for expected in (
        "create_resource",
        "already used",
        "update_resource",
        "detect_drift",
        "REMEDIATED",
        "remediate SUCCESS",
        "rollback_resource",
        "rollback SUCCESS",
        "show_dependency_graph",
        "analyze_change_impact",
        "depth 2: demo-data-reader",
        "restore_state_version",
        "stack demo-data: CREATE_COMPLETE",
        "Inbox ",
        "stack demo-data: UPDATE_COMPLETE",
        "rollback_stack",
        "stack demo-data: DELETE_COMPLETE",
        "ccstate state versions",
    ):
        assert expected in out, expected
    assert "Traceback" not in out + done.stderr
    # Every history line says why (a drift check's reason is its explanation), never None.
    assert " - None" not in out
    assert "drift_check SUCCESS by demo-user - 'Drift check requested through MCP.'" in out
