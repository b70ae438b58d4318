"""`ccstate serve` on stdio answers a session's opening requests from the memo of the SDK's own
answers while the SDK imports (mcp_server/stdio_prelude.py), then the SDK takes the session
over. Real server processes on real pipes: what a client reads must be exactly what the SDK
alone answers (CCSTATE_STDIO_MEMO=0), each request answered once, whatever the memo holds."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from ccstate.mcp_server.stdio_memo import MEMO_ENV
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.system.mcp.harness import server_env

ANSWER_TIMEOUT = 120
CLIENT = {"name": "prelude-test", "version": "1.0"}
HANDSHAKE = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT},
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    {"jsonrpc": "2.0", "id": "three", "method": "prompts/list"},
    {"jsonrpc": "2.0", "id": 4, "method": "ping"},
]
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": CLIENT,
    "io.modelcontextprotocol/clientCapabilities": {},
}
MODERN = [
    {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": MODERN_META}},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": MODERN_META}},
]


def call(ident: int, name: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": {}}
    if meta is not None:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": params}


class Served:
    """One `ccstate serve` process on pipes, its answers collected by a thread."""

    def __init__(self, tmp_path: Path, cache: Path, *, memo: bool = True, **env: str) -> None:
        env = server_env({}, tmp_path, XDG_CACHE_HOME=str(cache), **env)
        env[MEMO_ENV] = "1" if memo else "0"
        self.stderr_path = tmp_path / f"stderr-{os.getpid()}-{id(self)}.log"
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ccstate", "serve", "--backend", str(tmp_path / "state")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, messages: list[Any], raw: bytes = b"") -> None:
        """All at once, in one write: the hardest case for the hand-over."""
        assert self.process.stdin is not None
        data = raw + b"".join(json.dumps(m).encode() + b"\n" for m in messages)
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def answers(self, count: int) -> list[dict[str, Any]]:
        return [json.loads(self.lines.get(timeout=ANSWER_TIMEOUT)) for _ in range(count)]

    def finish(self) -> tuple[int, list[bytes], str]:
        """Close stdin; the exit code, anything else it wrote and its stderr."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=ANSWER_TIMEOUT)
        self._stderr.close()
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return code, rest, self.stderr_path.read_text()


def converse(
    tmp_path: Path,
    cache: Path,
    messages: list[Any],
    *,
    memo: bool = True,
    raw: bytes = b"",
    **env: str,
) -> tuple[dict[Any, Any], str]:
    """Send ``messages``, read one answer per request, leave: the answers by id (each id
    once) and the server's stderr. ``env``: more of the server's environment."""
    served = Served(tmp_path, cache, memo=memo, **env)
    served.send(messages, raw)
    expected = sum(1 for m in messages if "id" in m)
    got = served.answers(expected)
    code, rest, stderr = served.finish()
    assert code == 0, stderr
    assert rest == []  # nothing answered twice
    by_id = {answer.get("id"): answer for answer in got}
    assert len(by_id) == len(got), got
    return by_id, stderr


def memo_file(cache: Path) -> Path:
    return cache / "ccstate" / "stdio-answers.json"


def describe_every_tool_in_the_memo(
    cache: Path, description: str, fingerprint: str | None = None
) -> None:
    """Tamper with the memo: every tool it lists gets ``description``."""
    document = json.loads(memo_file(cache).read_text())
    for answer in document["answers"].values():
        for tool in answer.get("tools", []):
            tool["description"] = description
    if fingerprint is not None:
        document["fingerprint"] = fingerprint
    memo_file(cache).write_text(json.dumps(document))


def tools_of(answer: dict[str, Any]) -> dict[str, str]:
    return {tool["name"]: tool["description"] for tool in answer["result"]["tools"]}


@pytest.mark.parametrize("opening", [HANDSHAKE, MODERN], ids=["initialize", "server/discover"])
def test_a_session_answered_from_the_memo_reads_exactly_what_the_sdk_answers(
    tmp_path: Path, opening: list[dict[str, Any]]
) -> None:
    meta = MODERN_META if opening is MODERN else None
    script = [*opening, call(10, "list_state_versions", meta)]
    cache = tmp_path / "cache"

    alone, _ = converse(tmp_path, tmp_path / "unused", script, memo=False)
    recorded, _ = converse(tmp_path, cache, script)
    first_memo = memo_file(cache).read_bytes()
    from_memo, _ = converse(tmp_path, cache, script)

    assert recorded == alone
    assert from_memo == alone
    assert len(tools_of(alone[2])) >= 38
    assert not alone[10]["result"].get("isError")
    answers = json.loads(first_memo)["answers"]
    assert len(answers) == sum(1 for m in opening if "id" in m)  # the opening's, not the call
    assert memo_file(cache).read_bytes() == first_memo  # nothing new to record
    assert stat.S_IMODE(memo_file(cache).stat().st_mode) == 0o600


def test_a_stale_answer_is_sent_once_then_corrected_in_the_memo(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    truth, _ = converse(tmp_path, cache, HANDSHAKE)
    document = json.loads(memo_file(cache).read_text())
    listing = next(a for a in document["answers"].values() if "tools" in a)
    listing["tools"][0]["description"] = "a description from other code"
    memo_file(cache).write_text(json.dumps(document))

    stale, stderr = converse(tmp_path, cache, HANDSHAKE)
    corrected, _ = converse(tmp_path, cache, HANDSHAKE)

    first = truth[2]["result"]["tools"][0]["name"]
    assert tools_of(stale[2])[first] == "a description from other code"  # it came from the memo
    assert "differed from the server's" in stderr
    assert corrected == truth


def test_a_memo_of_other_code_is_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    truth, _ = converse(tmp_path, cache, HANDSHAKE)
    describe_every_tool_in_the_memo(cache, "other code", fingerprint="0" * 64)

    answered, _ = converse(tmp_path, cache, HANDSHAKE)

    assert answered == truth
    rewritten = json.loads(memo_file(cache).read_text())
    assert rewritten["fingerprint"] != "0" * 64


def test_docstrings_stripped_by_python_oo_are_other_answers(tmp_path: Path) -> None:
    """Under `python -OO` (PYTHONOPTIMIZE=2) the tools have no docstrings, so the SDK lists
    them without descriptions: the memo of a plain run is not used there."""
    cache = tmp_path / "cache"
    converse(tmp_path, cache, HANDSHAKE)
    answered, _ = converse(tmp_path, cache, HANDSHAKE, PYTHONOPTIMIZE="2")
    alone, _ = converse(tmp_path, tmp_path / "unused", HANDSHAKE, memo=False, PYTHONOPTIMIZE="2")

    assert answered == alone


def test_two_servers_starting_at_once_leave_one_whole_memo(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    truth, _ = converse(tmp_path, tmp_path / "unused", HANDSHAKE, memo=False)
    both = [Served(tmp_path, cache), Served(tmp_path, cache)]
    for served in both:
        served.send(HANDSHAKE)

    answered = [{a["id"]: a for a in served.answers(4)} for served in both]
    finished = [served.finish() for served in both]
    after, _ = converse(tmp_path, cache, HANDSHAKE)

    assert answered == [truth, truth]
    assert [code for code, _, _ in finished] == [0, 0]
    assert [p.name for p in memo_file(cache).parent.iterdir()] == [memo_file(cache).name]
    assert after == truth


def test_nothing_of_the_users_reaches_the_memo(tmp_path: Path) -> None:
    """Only the results of the opening's requests are kept: not the environment, the
    arguments, or what the client sent (its info, a token in `_meta`)."""
    cache = tmp_path / "cache"
    secret = "sentinel-0d6f1c"
    opening = [
        {
            **HANDSHAKE[0],
            "params": {**HANDSHAKE[0]["params"], "clientInfo": {**CLIENT, "name": secret}},
        },
        *HANDSHAKE[1:3],
        {**HANDSHAKE[3], "params": {"_meta": {"progressToken": secret}}},
    ]
    env = {"AWS_SECRET_ACCESS_KEY": secret, "CCSTATE_WORKSPACE": secret}

    converse(tmp_path, cache, opening, **env)
    converse(tmp_path, cache, opening, **env)

    assert len(json.loads(memo_file(cache).read_text())["answers"]) == 3
    assert secret not in memo_file(cache).read_text()


def test_a_memo_that_cannot_be_written_is_reported_once_per_session(tmp_path: Path) -> None:
    """Here its path is a folder; the session (tool calls after the opening) is served as
    without the memo, and its log is not flooded with the same warning."""
    cache = tmp_path / "cache"
    memo_file(cache).mkdir(parents=True)
    script = [*HANDSHAKE, *(call(10 + n, "list_state_versions") for n in range(3))]

    answered, stderr = converse(tmp_path, cache, script)

    assert all("result" in answer for answer in answered.values())
    assert stderr.count("could not write the stdio answer memo") == 1


def test_a_long_session_of_pings_keeps_the_opening_in_the_memo(tmp_path: Path) -> None:
    """A client that lists the tools, then only pings (keep-alive) for a long while: the
    pings are not recorded one by one over the opening's answers (the memo holds 32)."""
    cache = tmp_path / "cache"
    pings = [{**HANDSHAKE[4], "id": 100 + n} for n in range(40)]

    converse(tmp_path, cache, [*HANDSHAKE, *pings])

    answers = json.loads(memo_file(cache).read_text())["answers"].values()
    assert any("tools" in answer for answer in answers)
    assert any("serverInfo" in answer for answer in answers)


def test_a_corrupt_memo_is_reported_and_rewritten(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    memo_file(cache).parent.mkdir(parents=True)
    memo_file(cache).write_text('{"format": "ccstate.stdio-answers/1", "answ')

    answered, stderr = converse(tmp_path, cache, HANDSHAKE)

    assert "unreadable" in stderr and "rewritten" in stderr
    assert len(tools_of(answered[2])) >= 38
    assert json.loads(memo_file(cache).read_text())["answers"]


def test_requests_after_the_opening_are_the_sdks_even_if_the_memo_knows_them(
    tmp_path: Path,
) -> None:
    """A tool call ends the opening: the listing after it is the SDK's, not the memo's
    (which is tampered here to tell them apart), and every answer arrives once, in order
    of need."""
    cache = tmp_path / "cache"
    truth, _ = converse(tmp_path, cache, HANDSHAKE)
    describe_every_tool_in_the_memo(cache, "from the memo")
    script = [*HANDSHAKE[:2], call(5, "load_state"), {**HANDSHAKE[2], "id": 6}]

    answered, _ = converse(tmp_path, cache, script)

    assert answered[1] == truth[1]
    assert not answered[5]["result"].get("isError")
    assert tools_of(answered[6]) == tools_of(truth[2])


PING = {"jsonrpc": "2.0", "id": 0, "method": "ping"}


@pytest.mark.parametrize(
    ("earlier", "script"),
    [
        pytest.param([[HANDSHAKE[1], HANDSHAKE[2]]], [HANDSHAKE[2]], id="initialized-or-not"),
        pytest.param([[PING], MODERN], [PING, MODERN[1]], id="legacy-then-envelope"),
    ],
)
def test_an_answer_depends_on_everything_the_session_said_before_it(
    tmp_path: Path, earlier: list[list[dict[str, Any]]], script: list[dict[str, Any]]
) -> None:
    """The memo learns a request's answer in one session (a `notifications/initialized`
    alone initializes a session; an enveloped request opens the 2026 era); the same request
    in a session that said something else before it gets the SDK's own answer there (here:
    an error)."""
    cache = tmp_path / "cache"
    for session in earlier:
        converse(tmp_path, cache, session)

    answered, _ = converse(tmp_path, cache, script)
    alone, _ = converse(tmp_path, tmp_path / "unused", script, memo=False)

    assert "error" in alone[script[-1]["id"]]  # the request differs from the memo's
    assert answered == alone


def test_a_client_that_reuses_an_id_spoils_neither_its_session_nor_the_memo(
    tmp_path: Path,
) -> None:
    """MCP forbids it, but a client may: `tools/list` and `prompts/list` both with id 2. Each
    is answered once (as the SDK alone answers them), and the memo learns nothing wrong."""
    cache = tmp_path / "cache"
    truth, _ = converse(tmp_path, cache, HANDSHAKE)
    reusing = [*HANDSHAKE[:3], {**HANDSHAKE[3], "id": 2}]

    served = Served(tmp_path, cache)
    served.send(reusing)
    answers = served.answers(3)
    code, rest, stderr = served.finish()
    after, _ = converse(tmp_path, cache, HANDSHAKE)

    assert code == 0, stderr
    assert rest == []  # not one answer more
    assert sorted(next(iter(a["result"])) for a in answers) == [
        "capabilities",
        "prompts",
        "tools",
    ]
    assert after == truth


def served_from(tmp_path: Path, cache: Path, stdin: Path, *, memo: bool) -> dict[Any, Any]:
    """`ccstate serve` reading ``stdin`` (a file, not a pipe) to its end: its answers by id."""
    env = server_env({}, tmp_path, XDG_CACHE_HOME=str(cache))
    env[MEMO_ENV] = "1" if memo else "0"
    with stdin.open("rb") as source:
        done = subprocess.run(
            [sys.executable, "-m", "ccstate", "serve", "--backend", str(tmp_path / "state")],
            stdin=source,
            capture_output=True,
            env=env,
            timeout=ANSWER_TIMEOUT,
        )
    assert done.returncode == 0, done.stderr.decode()
    return {answer["id"]: answer for answer in map(json.loads, done.stdout.splitlines())}


@pytest.mark.parametrize("source", ["a file", "the null device"])
def test_stdin_from_a_file_or_the_null_device_is_served(tmp_path: Path, source: str) -> None:
    """Not every stdin can be watched for input (epoll refuses files and /dev/null). Only
    `initialize` in the file: the SDK drops the requests in flight at the end of input."""
    cache = tmp_path / "cache"
    converse(tmp_path, cache, HANDSHAKE)  # the memo knows the opening
    stdin = Path(os.devnull)
    if source == "a file":
        stdin = tmp_path / "requests.jsonl"
        stdin.write_bytes(json.dumps(HANDSHAKE[0]).encode() + b"\n")

    answered = served_from(tmp_path, cache, stdin, memo=True)

    assert answered == served_from(tmp_path, cache, stdin, memo=False)
    assert len(answered) == (0 if source == "the null device" else 1)


def test_bad_input_in_the_opening_is_handled_as_the_sdk_handles_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    converse(tmp_path, cache, HANDSHAKE)  # the memo knows the opening

    with_memo, _ = converse(tmp_path, cache, HANDSHAKE, raw=b"this is not json\n")
    alone, _ = converse(tmp_path, cache, HANDSHAKE, raw=b"this is not json\n", memo=False)

    assert with_memo == alone  # the SDK logs a line it cannot parse and answers the rest
    assert len(tools_of(with_memo[2])) >= 38


@pytest.mark.parametrize("warm", [False, True], ids=["no memo", "memo"])
def test_end_of_input_during_the_opening_ends_the_server(tmp_path: Path, warm: bool) -> None:
    cache = tmp_path / "cache"
    if warm:
        converse(tmp_path, cache, HANDSHAKE)
    served = Served(tmp_path, cache)
    served.send(HANDSHAKE[:1])

    (answer,) = served.answers(1)
    code, rest, stderr = served.finish()

    assert code == 0, stderr
    assert answer["result"]["serverInfo"]["name"] == "ccstate"
    assert rest == []


@pytest.mark.parametrize("warm", [False, True], ids=["no memo", "memo"])
def test_sigterm_after_the_hand_over_stops_the_server_while_the_client_keeps_its_pipe(
    tmp_path: Path, warm: bool
) -> None:
    """A client may stop its server with SIGTERM and never close stdin: the server stops
    (it used to wait, blocked on the pipe, until the client closed it)."""
    cache = tmp_path / "cache"
    if warm:
        converse(tmp_path, cache, HANDSHAKE)
    served = Served(tmp_path, cache)
    served.send([*HANDSHAKE, call(10, "list_state_versions")])
    served.answers(5)  # the tool call's answer is the SDK's: it has taken over

    served.process.send_signal(signal.SIGTERM)
    code = served.process.wait(timeout=ANSWER_TIMEOUT)  # stdin still open
    served._stderr.close()

    assert code == 0
    assert "SIGTERM: stopping" in served.stderr_path.read_text()
    assert [p.name for p in memo_file(cache).parent.iterdir()] == [memo_file(cache).name]


def test_sigterm_while_the_memo_answers_stops_the_server(tmp_path: Path) -> None:
    """Before the SDK's signal handling is in place the default action stops the process:
    nothing is held yet and the memo is only written after the hand-over."""
    cache = tmp_path / "cache"
    converse(tmp_path, cache, HANDSHAKE)
    memo_before = memo_file(cache).read_bytes()
    served = Served(tmp_path, cache)
    served.send(HANDSHAKE)
    served.answers(4)

    served.process.send_signal(signal.SIGTERM)
    code = served.process.wait(timeout=ANSWER_TIMEOUT)  # stdin still open

    assert code in (0, -signal.SIGTERM)  # the prelude's, or the SDK's if it took over first
    assert memo_file(cache).read_bytes() == memo_before
    assert [p.name for p in memo_file(cache).parent.iterdir()] == [memo_file(cache).name]


def test_a_client_that_leaves_at_any_point_of_the_opening_gets_each_answer_once_at_most(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    truth, _ = converse(tmp_path, cache, HANDSHAKE)

    for count in range(len(HANDSHAKE) + 1):
        served = Served(tmp_path, cache)
        served.send(HANDSHAKE[:count])
        code, rest, stderr = served.finish()  # stdin closed at once
        answers = [json.loads(line) for line in rest]

        assert code == 0, stderr
        assert len({a["id"] for a in answers}) == len(answers), answers
        assert all(truth[a["id"]] == a for a in answers)
    after, _ = converse(tmp_path, cache, HANDSHAKE)
    assert after == truth  # the memo is whole


def test_a_configuration_error_stops_the_start_before_the_memo_answers(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    converse(tmp_path, cache, HANDSHAKE)
    served = Served(tmp_path, cache, CCSTATE_TOKEN_TTL="soon")
    with contextlib.suppress(BrokenPipeError):  # it may have stopped already
        served.send(HANDSHAKE)

    code, answers, stderr = served.finish()

    assert code == 2
    assert answers == []
    assert "Invalid setting 'token_ttl'" in stderr


STRAY_WRITER = """
import os, subprocess, threading

def _write_stray_once_asked():
    with open(os.environ["STRAY_TRIGGER"]) as asked:  # a FIFO: waits for the test
        asked.read()
    print("a stray print", flush=True)
    os.write(1, b"a stray write to fd 1\\n")
    subprocess.run(["echo", "a child's stray output"], check=True)
    with open(os.environ["STRAY_TRIGGER"] + ".done", "w") as done:
        done.write("done")

threading.Thread(target=_write_stray_once_asked, daemon=True).start()
"""


@pytest.mark.parametrize("warm", [False, True], ids=["no memo", "memo"])
def test_stray_output_after_the_hand_over_does_not_reach_the_client(
    tmp_path: Path, warm: bool
) -> None:
    """A library's print, a write to fd 1 or a child's output go to stderr, not into the
    protocol (a sitecustomize writes them when the test asks, through a FIFO)."""
    cache = tmp_path / "cache"
    if warm:
        converse(tmp_path, cache, HANDSHAKE)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(STRAY_WRITER)
    trigger = tmp_path / "write-stray"
    os.mkfifo(trigger)
    os.mkfifo(f"{trigger}.done")
    served = Served(
        tmp_path,
        cache,
        PYTHONPATH=f"{tmp_path / 'site'}{os.pathsep}{server_env({}, tmp_path)['PYTHONPATH']}",
        STRAY_TRIGGER=str(trigger),
    )
    served.send([*HANDSHAKE, call(10, "list_state_versions")])
    served.answers(5)  # the SDK has taken over

    trigger.write_text("now")
    assert Path(f"{trigger}.done").read_text() == "done"
    served.send([{**HANDSHAKE[4], "id": 11}])
    (after,) = served.answers(1)
    code, rest, stderr = served.finish()

    assert after == {"jsonrpc": "2.0", "id": 11, "result": {}}
    assert (code, rest) == (0, [])
    assert "a stray print" in stderr and "a child's stray output" in stderr


def test_the_sdk_client_works_on_a_memo_answered_session(tmp_path: Path) -> None:
    """The SDK's own client (server/discover, tools, a call) on a warm memo."""
    import asyncio

    cache = tmp_path / "cache"
    env = server_env({}, tmp_path, XDG_CACHE_HOME=str(cache))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ccstate", "serve", "--backend", str(tmp_path / "state")],
        env=env,
    )

    async def session() -> tuple[int, bool]:
        with open(tmp_path / "client-stderr.log", "a") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                tools = (await client.list_tools()).tools
                result = await client.call_tool("list_state_versions", {})
                return len(tools), bool(result.is_error)

    cold = asyncio.run(session())
    warm = asyncio.run(session())

    assert memo_file(cache).exists()
    assert cold == warm
    assert cold[0] >= 38 and cold[1] is False
