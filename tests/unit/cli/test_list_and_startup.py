"""`state list` beyond a screenful (--limit, --all, the "N more" line), and start-up that imports
only what the command needs (checked on sys.modules of a fresh interpreter)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

from ccstate import cli
from ccstate.cli import COMMANDS, main

RESOURCES = 30


def bucket(i: int) -> str:
    return f"bucket-{i:03d}"


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    root = tmp_path / "state"

    async def seed() -> None:
        store = StateStore(LocalObjectStore(root))
        changes = [
            ResourceChange(
                identifier=bucket(i),
                resource_type="AWS::S3::Bucket",
                operation="create",
                region="us-east-1",
                properties_after={"BucketName": bucket(i)},
            )
            for i in range(RESOURCES)
        ]
        await store.commit(changes, CommitMeta(principal=Principal(user="alice")))

    asyncio.run(seed())
    return root


def listed(capsys: pytest.CaptureFixture[str], backend: Path, *args: str) -> list[str]:
    assert main(["state", "list", "--backend", str(backend), *args]) == 0
    return capsys.readouterr().out.splitlines()


def rows_of(lines: list[str]) -> list[str]:
    return [line.split()[0] for line in lines if line.startswith("bucket-")]


def test_limit_shows_that_many_rows_and_says_how_many_more(capsys, backend: Path) -> None:
    lines = listed(capsys, backend, "--limit", "5")

    assert rows_of(lines) == [bucket(i) for i in range(5)]
    assert lines[-1].startswith(f"... and {RESOURCES - 5} more.")
    assert "--all" in lines[-1]
    assert f"{RESOURCES} resource(s), first 5 shown" in lines[0]


def test_all_shows_every_resource_in_aligned_columns(capsys, backend: Path) -> None:
    lines = listed(capsys, backend, "--all")

    assert rows_of(lines) == [bucket(i) for i in range(RESOURCES)]
    assert not any("more." in line for line in lines)
    header = next(line for line in lines if line.startswith("Identifier"))
    first = next(line for line in lines if line.startswith("bucket-"))
    assert first.index("AWS::S3::Bucket") == header.index("Type")


def test_default_is_a_screenful(capsys, backend: Path, monkeypatch) -> None:
    monkeypatch.setenv("LINES", "20")
    lines = listed(capsys, backend)

    shown = rows_of(lines)
    assert 10 <= len(shown) < RESOURCES
    assert len(lines) <= 20
    assert lines[-1].startswith(f"... and {RESOURCES - len(shown)} more.")


def test_json_lists_everything_unless_limited(capsys, backend: Path) -> None:
    everything = json.loads("\n".join(listed(capsys, backend, "--output", "json")))
    limited = json.loads("\n".join(listed(capsys, backend, "--output", "json", "--limit", "3")))

    assert len(everything["resources"]) == everything["total"] == RESOURCES
    assert [r["identifier"] for r in limited["resources"]] == [bucket(i) for i in range(3)]
    assert limited["total"] == RESOURCES


def test_limit_and_all_together_are_refused(capsys, backend: Path) -> None:
    assert main(["state", "list", "--backend", str(backend), "--all", "--limit", "2"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_empty_state_says_so(capsys, tmp_path: Path) -> None:
    lines = listed(capsys, tmp_path / "nothing")
    assert lines == ["No resources in workspace 'default' at serial 0."]


# ---------------------------------------------------------------------- start-up


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def loaded(modules: set[str], *names: str) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_help_imports_no_command_module_nor_the_sdks() -> None:
    modules = modules_after(
        "import contextlib, io\nfrom ccstate.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])"
    )
    assert loaded(modules, "ccstate.commands", "mcp", "mcp_types", "rich", "aioboto3") == []
    assert loaded(modules, "ccstate.service.state", "pydantic", "botocore") == []


def test_state_list_imports_neither_mcp_nor_aws_sdk(tmp_path: Path) -> None:
    modules = modules_after(
        "import contextlib, io\nfrom ccstate.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): main(['state', 'list', '--backend', "
        f"{str(tmp_path)!r}])"
    )
    assert loaded(modules, "mcp", "mcp_types", "aioboto3", "botocore", "rich") == []


def test_state_list_on_a_local_backend_builds_no_model(backend: Path) -> None:
    """The light listing reads the snapshot's JSON (service/state/listing.py): neither pydantic
    nor the state model, the store or the secret scanner is imported for it."""
    modules = modules_after(
        f"import contextlib, io, os\nos.environ['HOME'] = {str(backend.parent)!r}\n"
        "from ccstate.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    assert main(['state', 'list', '--all', '--backend', {str(backend)!r}]) == 0\n"
        f"assert out.getvalue().count('bucket-') == {RESOURCES}"
    )
    heavy = ("pydantic", "ccstate.service.state.model", "ccstate.service.state.store")
    assert loaded(modules, *heavy, "detect_secrets", "deepdiff", "jsonschema") == []


def test_settings_that_need_pydantic_still_list_and_errors_are_reported(
    capsys, backend: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CCSTATE_SNAPSHOT_EVERY", "25")  # a string: pydantic converts it
    assert rows_of(listed(capsys, backend, "--all")) == [bucket(i) for i in range(RESOURCES)]

    config = tmp_path / "config.json"
    config.write_text('{"state_management": {"lock_timout": "30s"}}')
    monkeypatch.setenv("CCSTATE_CONFIG", str(config))
    assert main(["state", "list", "--backend", str(backend)]) != 0
    assert "Unknown setting 'lock_timout'" in capsys.readouterr().err


def test_help_lists_every_command_each_module_registers(capsys) -> None:
    """The static table that `ccstate --help` prints agrees with the modules themselves."""
    registered: dict[str, str] = {}
    for module_name in dict.fromkeys(command.module for command in COMMANDS):
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        importlib.import_module(module_name).register(subparsers, cli.common_options())
        registered |= {a.dest: a.help for a in subparsers._choices_actions}

    assert {c.name: c.help for c in COMMANDS} == registered
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command.name in out for command in COMMANDS)


def test_version_is_looked_up_when_asked(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("ccstate ")


def test_server_start_defers_the_aws_sdk_until_a_tool_needs_it(tmp_path: Path) -> None:
    modules = modules_after(
        "import asyncio\n"
        "from ccstate.app import ServerOptions, open_server\n"
        "async def start():\n"
        f"    async with open_server(ServerOptions(backend={str(tmp_path)!r})) as runtime:\n"
        "        assert runtime.workflow.cloud is not None\n"
        "asyncio.run(start())"
    )
    assert loaded(modules, "aioboto3", "botocore") == []
