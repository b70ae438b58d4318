"""The layout the architecture promises: one import name in the wheel, and a domain that knows
nothing of its faces or of the outside world's libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# What service/ may never import: the faces, the adapters, the SDKs and UI libraries.
FORBIDDEN_IN_SERVICE = (
    "boto3",
    "botocore",
    "aioboto3",
    "aiobotocore",
    "mcp",
    "argparse",
    "rich",
    "ccstate.mcp_server",
    "ccstate.cli",
    "ccstate.commands",
    "ccstate.backends",
    "ccstate.sandbox",
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_SERVICE)


def test_service_imports_no_face_and_no_sdk() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "service").rglob("*.py"))
        for name in _imports(path)
        if _forbidden(name)
    ]
    assert offenders == []


def test_adapters_import_no_face() -> None:
    """backends/ and sandbox/ implement ports; they never reach up into the MCP face or the CLI."""
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in ("backends", "sandbox")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path)
        if name.startswith(("ccstate.mcp_server", "ccstate.cli", "ccstate.commands"))
    ]
    assert offenders == []


def test_code_imports_the_one_namespace() -> None:
    """No module imports the folders by their bare names (``from service.x import``)."""
    bare = ("service", "backends", "mcp_server", "sandbox")
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for folder in (*bare, "ccstate", "tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in bare
    ]
    assert offenders == []


@pytest.mark.slow
def test_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("ccstate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"ccstate"}
    for module in (
        "ccstate/service/state/store.py",
        "ccstate/backends/s3.py",
        "ccstate/mcp_server/server.py",
        "ccstate/sandbox/cloudcontrol.py",
        "ccstate/cli.py",
        "ccstate/backends/checkov_worker.py",
        "ccstate/infra/state-backend.yaml",
    ):
        assert module in names
    assert not any(name.startswith(("ccstate/tests/", "ccstate/benchmarks/")) for name in names)
