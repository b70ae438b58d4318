"""The installed ``ccstate`` console script, run as a user would: real processes, real files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.cli.seed import BUCKET, BUCKET_V1, HEAD, QUEUE, seed

CCSTATE = Path(sys.executable).with_name("ccstate")


def ccstate(*args: str, backend: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CCSTATE_BACKEND": str(backend)} if backend else dict(os.environ)
    return subprocess.run(
        [str(CCSTATE), *args], capture_output=True, text=True, env=env, timeout=120
    )


def as_json(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout)


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    return seed(tmp_path / "state")


def test_console_script_and_module_entry_points() -> None:
    assert CCSTATE.exists(), "run `make install`: the ccstate console script is missing"
    script = ccstate("--version")
    module = subprocess.run(
        [sys.executable, "-m", "ccstate", "--version"], capture_output=True, text=True
    )
    assert script.returncode == module.returncode == 0
    assert script.stdout.startswith("ccstate ") and script.stdout == module.stdout


def test_read_commands_print_stable_json(backend: Path) -> None:
    listed = ccstate("state", "list", "--output", "json", backend=backend)
    assert listed.returncode == 0, listed.stderr
    assert [r["identifier"] for r in as_json(listed)["resources"]] == [BUCKET]

    shown = as_json(
        ccstate("state", "show", BUCKET, "--at", "1", "--output", "json", backend=backend)
    )
    assert shown["resource"]["current_properties"] == BUCKET_V1

    history = as_json(ccstate("state", "history", QUEUE, "--output", "json", backend=backend))
    assert [e["operation"] for e in history["entries"]] == ["create", "delete"]

    versions = as_json(ccstate("state", "versions", "--output", "json", backend=backend))
    assert sorted(versions) == ["head", "versions", "workspace"]
    assert sorted(versions["versions"][0]) == [
        "committed_at",
        "execution_token",
        "kind",
        "serial",
        "summary",
        "who",
        "why",
    ]

    diff = as_json(ccstate("state", "diff", "1", "2", "--output", "json", backend=backend))
    assert diff["summary"] == {"added": 1, "changed": 0, "removed": 0}


def test_table_output_is_for_people(backend: Path) -> None:
    result = ccstate("state", "versions", backend=backend)
    assert result.returncode == 0
    assert "Serial" in result.stdout and "not needed" in result.stdout
    assert not result.stdout.lstrip().startswith("{")


def test_restore_records_a_commit_and_leaves_no_lock(backend: Path) -> None:
    restored = ccstate("state", "restore", "2", "--output", "json", backend=backend)
    assert restored.returncode == 0, restored.stderr
    assert as_json(restored)["serial"] == HEAD + 1
    locks = as_json(ccstate("lock", "list", "--output", "json", backend=backend))
    assert locks["locks"] == []


def test_a_command_that_commits_leaves_the_export_at_its_commit(
    backend: Path, tmp_path: Path
) -> None:
    """The readable export is written when the command ends, not inside its commit."""
    doc = tmp_path / "pulled.json"
    assert ccstate("state", "pull", str(doc), backend=backend).returncode == 0
    data = json.loads(doc.read_text())
    data["resources"][next(iter(data["resources"]))]["current_properties"]["Tag"] = "pushed"
    doc.write_text(json.dumps(data))
    assert ccstate("state", "push", str(doc), backend=backend).returncode == 0
    current = json.loads(ccstate("state", "pull", backend=backend).stdout)
    export = backend / "state.json"
    assert json.loads(export.read_text()) == current
    assert current["metadata"]["serial"] == data["metadata"]["serial"] + 1
    assert stat.S_IMODE(export.stat().st_mode) == 0o600


def test_pull_then_push_a_hand_edited_document(backend: Path, tmp_path: Path) -> None:
    doc = tmp_path / "state.json"
    pulled = ccstate("state", "pull", str(doc), backend=backend)
    assert pulled.returncode == 0, pulled.stderr
    assert stat.S_IMODE(doc.stat().st_mode) == 0o600

    data = json.loads(doc.read_text())
    data["metadata"]["total_resources"] = "many"
    doc.write_text(json.dumps(data))
    pushed = ccstate("state", "push", str(doc), backend=backend)
    assert pushed.returncode == 2
    assert "metadata.total_resources" in pushed.stderr
    assert pushed.stderr.startswith("Error: ") and "\nNext: " in pushed.stderr

    data["metadata"]["total_resources"] = 1
    doc.write_text(json.dumps(data))
    assert ccstate("state", "push", str(doc), backend=backend).returncode == 0
    stale = ccstate("state", "push", str(doc), "--output", "json", backend=backend)
    assert stale.returncode == 4
    assert as_json(stale)["error"] == "import_refused"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["state", "show", "../x"], 2, "'..'"),
        (["state", "list", "--workspace", "../x"], 2, "workspace"),
        (["state", "restore", "abc"], 2, "not a serial"),
        (["lock", "force-unlock", "ffffffffffffffff"], 6, "No lock"),
    ],
)
def test_bad_input_gets_a_clear_error_and_exit_code(backend, args, code, words) -> None:
    result = ccstate(*args, backend=backend)
    assert result.returncode == code
    assert words in result.stderr
    assert result.stdout == ""


def test_truncated_log_file_is_a_clear_error(backend: Path) -> None:
    log_file = backend / "default" / "log" / "00000000000000000002.json"
    log_file.write_bytes(log_file.read_bytes()[:-30])
    result = ccstate("state", "list", "--output", "json", backend=backend)
    assert result.returncode == 5
    error = as_json(result)
    assert error["error"] == "state_corrupt"
    assert "00000000000000000002.json" in error["message"] and error["next_step"]


def test_sandbox_command_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [str(CCSTATE), "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = ""
        for line in proc.stdout:
            if line.startswith("export AWS_ENDPOINT_URL="):
                endpoint = line.split("=", 1)[1].strip()
                break
        assert endpoint.startswith("http://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code in (0, 130)


def test_sandbox_refuses_a_port_out_of_range() -> None:
    result = ccstate("sandbox", "--port", "70000")
    assert result.returncode == 2
    assert "65535" in result.stderr


def _pulled(backend: Path, tmp_path: Path) -> dict:
    doc = tmp_path / "pulled.json"
    assert ccstate("state", "pull", str(doc), backend=backend).returncode == 0
    return json.loads(doc.read_text())


def _edit_first_resource(data: dict, field: str, value: object) -> dict:
    first = next(iter(data["resources"].values()))
    if field == "current_properties":
        first[field]["Note"] = value
    else:
        first[field] = value
    return data


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("resource_type", "../../x", "not a resource type name"),
        ("resource_type", "AWS::S3::Bu\u200fcket", "not a resource type name"),
        ("identifier", "my-bucket\u200f", "invisible or bidirectional"),
        ("current_properties", "gnp.exe\u202eabc", "bidirectional override"),
    ],
)
def test_push_refuses_bad_type_names_and_hidden_characters(
    backend: Path, tmp_path: Path, field: str, value: str, words: str
) -> None:
    doc = tmp_path / "edited.json"
    doc.write_text(json.dumps(_edit_first_resource(_pulled(backend, tmp_path), field, value)))
    pushed = ccstate("state", "push", str(doc), backend=backend)
    assert pushed.returncode == 2, pushed.stderr
    assert words in pushed.stderr and "\nNext: " in pushed.stderr
    versions = as_json(ccstate("state", "versions", "--output", "json", backend=backend))
    assert versions["head"] == HEAD


def test_push_bounds_what_it_reads(backend: Path) -> None:
    """/dev/zero as a file or on stdin: a clear error, not a process reading until killed."""
    from_file = ccstate("state", "push", "/dev/zero", backend=backend)
    with open("/dev/zero", "rb") as zeros:
        from_stdin = subprocess.run(
            [str(CCSTATE), "state", "push", "-"],
            stdin=zeros,
            capture_output=True,
            text=True,
            env={**os.environ, "CCSTATE_BACKEND": str(backend)},
            timeout=120,
        )
    for result in (from_file, from_stdin):
        assert result.returncode == 2, result.stderr
        assert "larger than 256 MiB" in result.stderr


def test_push_of_a_100k_deep_document_is_bad_input(backend: Path, tmp_path: Path) -> None:
    doc = tmp_path / "deep.json"
    doc.write_text('{"version": "1", "resources": ' + "[" * 100_000 + "]" * 100_000 + "}")
    pushed = ccstate("state", "push", str(doc), backend=backend)
    assert pushed.returncode == 2, pushed.stderr
    assert "levels deep" in pushed.stderr and "RecursionError" not in pushed.stderr


def test_a_workspace_cannot_take_the_export_files_name(backend: Path) -> None:
    result = ccstate("state", "list", "--workspace", "state.json", backend=backend)
    assert result.returncode == 2
    assert "reserved" in result.stderr
    assert not (backend / "state.json").is_dir()


@pytest.mark.parametrize("command", [("serve", "--sandbox"), ("sandbox",)])
def test_sandbox_without_the_extra_gets_an_install_hint(command: tuple[str, ...]) -> None:
    # The wheel without the `sandbox` extra: moto cannot be imported.
    hide_moto = (
        "import sys; sys.modules['moto'] = None; from ccstate.cli import main; "
        f"sys.exit(main({list(command)!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_moto], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'ccstate[sandbox]'" in result.stderr
    assert "bug" not in result.stderr


def test_sandbox_on_a_port_in_use_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = ccstate("sandbox", "--port", str(port))
    assert result.returncode == 2, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    assert "--port 0" in result.stderr
    assert "Traceback" not in result.stderr and "bug" not in result.stderr


def test_global_options_go_before_the_command(backend: Path) -> None:
    sandbox = subprocess.Popen(
        [str(CCSTATE), "-vv", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = sandbox.stdout.readline()
        assert first.startswith("# ccstate sandbox"), sandbox.stderr.read()
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=60)
    assert "sandbox listening on" in sandbox.stderr.read()  # -vv took effect

    listed = ccstate("--output", "json", "--backend", str(backend), "state", "list")
    assert listed.returncode == 0, listed.stderr
    assert [r["identifier"] for r in as_json(listed)["resources"]] == [BUCKET]
    # An option given after the command still wins over the same option before it.
    table = ccstate("--output", "json", "state", "list", "--output", "table", backend=backend)
    assert not table.stdout.lstrip().startswith("{")


def test_reading_an_empty_state_says_so_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("CCSTATE_BACKEND", None)
    for args in (("state", "versions"), ("state", "list"), ("lock", "list")):
        result = subprocess.run(
            [str(CCSTATE), *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 0, result.stderr
    versions = subprocess.run(
        [str(CCSTATE), "state", "versions"], capture_output=True, text=True, env=env, timeout=120
    )
    assert versions.stdout.strip() == (
        "Workspace 'default' has no versions yet: nothing has been recorded."
    )
    assert list(home.iterdir()) == []  # no ~/.aws/ccapi-mcp-server made by a read


def _on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    import pty

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen([str(CCSTATE), *args], stdout=secondary, stderr=secondary, env=env)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=120)
    finally:
        os.close(primary)
    return b"".join(chunks)


def test_no_color_means_no_escape_codes_on_a_terminal(backend: Path) -> None:
    env = {**os.environ, "CCSTATE_BACKEND": str(backend), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    styled = _on_a_terminal(["state", "versions"], env)
    assert b"\x1b[" in styled  # the check below can fail
    plain = _on_a_terminal(["state", "versions"], {**env, "NO_COLOR": "1"})
    assert b"Serial" in plain and b"\x1b[" not in plain


def test_serve_at_a_terminal_stops_on_the_first_ctrl_c() -> None:
    import pty
    import select

    pid, terminal = pty.fork()
    if pid == 0:  # the child: ccstate serve with the terminal as stdin/stdout/stderr
        os.execv(str(CCSTATE), [str(CCSTATE), "serve", "--sandbox"])
    seen = b""
    try:
        # A person types an MCP request: its answer shows the server reads the terminal.
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "terminal", "version": "0"},
            },
        }
        os.write(terminal, json.dumps(initialize).encode() + b"\n")
        while b"serverInfo" not in seen:
            ready, _, _ = select.select([terminal], [], [], 120)
            assert ready, f"serve did not answer: {seen!r}"
            seen += os.read(terminal, 65536)
        os.write(terminal, b"\x03")  # Ctrl-C, and no Enter after it
        _, status = os.waitpid(pid, 0)  # the test's timeout bounds this wait
        with contextlib.suppress(OSError):
            while chunk := os.read(terminal, 65536):
                seen += chunk
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130
    assert b"Interrupted." in seen
