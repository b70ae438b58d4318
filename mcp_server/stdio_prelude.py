"""The stdio server answers a session's opening requests while the MCP SDK is still importing.

An MCP client starts ``ccstate serve`` for every session and first asks what it serves
(``initialize`` or ``server/discover``, then ``tools/list``, maybe ``prompts/list``). Importing
the SDK and registering the tools takes about a second, and the answers to those requests
depend only on the installed code. So the SDK's own answers are kept in a memo
(``mcp_server.stdio_memo``, keyed by the request and a fingerprint of the code), and on the
next start a thread imports the SDK while the prelude answers the same requests from the
memo. When the SDK is ready it takes over the session: it reads every message read so far, in
order (so its session is the one it would have had), its answers to the requests already
answered are dropped after a comparison with what was sent, and it serves the rest.

Only an exact match is answered: same code, and the same session so far (every message the
client sent up to this request, ids aside: the SDK's answer depends on the handshake, on
whether ``notifications/initialized`` came, on the era the first request opened). Anything
else (another request, bad JSON, a new client) ends the prelude at once; the SDK then answers
as it always did, and its answers to a session's opening requests are recorded. This module
must stay light: it runs before the SDK and pydantic are imported.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import selectors
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ccstate.mcp_server.stdio_memo import Memo

log = logging.getLogger(__name__)

# Requests whose answer depends on the code alone (and on the handshake: see ``Opening``).
ANSWERABLE = frozenset(
    {
        "initialize",
        "server/discover",
        "ping",
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
    }
)
# Messages: past them a session is under way (a keep-alive ping is not recorded after each
# longer history, pushing the opening's answers out of the memo).
OPENING_SIZE = 16
READ_SIZE = 65536
SETTLE_SECONDS = 5.0
T = TypeVar("T")


# ------------------------------------------------------------------ the session's opening


@dataclass
class Opening:
    """The session's opening requests: those the prelude answered (by id: the memo key and
    what it sent) and those whose answer from the SDK is to be recorded. The opening ends at
    the first message that is neither an answerable request nor a notification, or after
    ``OPENING_SIZE`` messages (``heard``). ``said``: a digest of the messages of the opening
    so far. ``id_reused``: the client reused the id of a request still awaiting the SDK's
    answer (MCP forbids it), so answers can no longer be told apart by id: nothing more is
    answered or recorded."""

    memo: Memo
    sent: dict[str, tuple[str, Any]] = field(default_factory=dict)
    to_record: dict[str, str] = field(default_factory=dict)
    said: Any = field(default_factory=hashlib.sha256)
    heard: int = 0
    id_reused: bool = False
    needs_sdk: bool = False
    over: bool = False

    def answer(self, line: bytes) -> bytes | None:
        """The response to ``line`` from the memo, or None (the SDK must read it first)."""
        message, key = self._classify(line)
        if message is None or key is None:
            return None
        result = self.memo.get(key)
        if result is None:
            self.to_record[_id(message)] = key
            self.needs_sdk = True
            return None
        self.sent[_id(message)] = (key, result)
        return _response(message["id"], result)

    def note(self, line: bytes) -> None:
        """A line the SDK reads after the prelude: its answer is recorded if it opens the
        session."""
        if self.over:
            return
        message, key = self._classify(line)
        if message is not None and key is not None:
            self.to_record[_id(message)] = key

    def keep(self, text: str) -> bool:
        """Whether an outgoing message of the SDK goes to the client: not its answer to a
        request the prelude answered (that answer is compared with what was sent). Answers to
        opening requests are recorded. Once nothing is awaited it parses nothing."""
        if not self.sent and not self.to_record:
            return True
        message = _parse(text.encode())
        if message is None or "method" in message or "id" not in message:
            return True
        ident = _id(message)
        if ident in self.sent:
            key, sent = self.sent.pop(ident)
            if message.get("result") != sent and not self.id_reused:
                log.warning(
                    "an answer sent from the stdio memo differed from the server's; memo updated"
                )
                self.memo.record(key, message.get("result"))
            return False
        key = self.to_record.pop(ident, None)
        if key is not None and "result" in message and not self.id_reused:
            self.memo.record(key, message["result"])
        return True

    @property
    def awaited(self) -> bool:
        """Answers of the SDK still to compare or record."""
        return bool(self.sent or self.to_record)

    def _classify(self, line: bytes) -> tuple[dict[str, Any] | None, str | None]:
        message = _parse(line)
        if message is not None and "id" in message and _id(message) in self._awaited_ids():
            self.id_reused = True
        if message is None or self.id_reused or self.heard == OPENING_SIZE:
            self.over = True
            return None, None
        self.heard += 1
        return message, self._key(message)

    def _awaited_ids(self) -> set[str]:
        return self.sent.keys() | self.to_record.keys()

    def _key(self, message: dict[str, Any]) -> str | None:
        """The memo key of an answerable request: the digest of the session up to it. Anything
        else but a notification ends the opening."""
        answerable = not self.over and _is_request(message) and message["method"] in ANSWERABLE
        if not answerable and not _is_notification(message):
            self.over = True
            return None
        canonical = json.dumps(
            [message["method"], message.get("params")], sort_keys=True, separators=(",", ":")
        )
        self.said.update(canonical.encode() + b"\n")
        return self.said.hexdigest() if answerable else None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and message.get("jsonrpc") == "2.0" else None


def _is_request(message: dict[str, Any]) -> bool:
    ident = message.get("id")
    return (
        isinstance(message.get("method"), str)
        and isinstance(ident, int | str)
        and not isinstance(ident, bool)
        and isinstance(message.get("params"), dict | None)
    )


def _is_notification(message: dict[str, Any]) -> bool:
    return isinstance(message.get("method"), str) and "id" not in message


def _id(message: dict[str, Any]) -> str:
    return json.dumps(message["id"])


def _response(ident: Any, result: Any) -> bytes:
    body = {"jsonrpc": "2.0", "id": ident, "result": result}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


# ------------------------------------------------------------------------------- the wire


@dataclass
class Wire:
    """The client's pipe, on private descriptors: fd 0 then reads the null device and fd 1
    writes to stderr, so nothing else in the process (a child, a stray print) reads or writes
    the protocol (as the SDK's own stdio transport does)."""

    read_fd: int
    write_fd: int
    buffer: bytearray = field(default_factory=bytearray)
    eof: bool = False
    searched: int = 0  # no newline before this offset: a long line is searched once

    def read_line(self) -> bytes | None:
        """The next line (blocking), the last bytes before end of input, or None at the end."""
        while not self.has_line() and not self.eof:
            self.fill()
        if not self.buffer:
            return None
        newline = self.buffer.find(b"\n", self.searched)
        end = len(self.buffer) if newline < 0 else newline + 1
        line = bytes(self.buffer[:end])
        del self.buffer[:end]
        self.searched = 0
        return line

    def fill(self) -> None:
        """Read what is there (one read; the caller knows it will not block)."""
        chunk = os.read(self.read_fd, READ_SIZE)
        self.eof = not chunk
        self.buffer += chunk

    def has_line(self) -> bool:
        if self.buffer.find(b"\n", self.searched) >= 0:
            return True
        self.searched = len(self.buffer)
        return self.eof and bool(self.buffer)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.write_fd, view) :]


@contextlib.contextmanager
def claimed_wire() -> Iterator[Wire]:
    """Move the client's pipe from fd 0/1 to private descriptors; put them back on exit. The
    private ones stay open: a worker thread may still be blocked reading one (as in the SDK's
    transport, a closed descriptor could be reused under it)."""
    read_fd = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    write_fd = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(2, 1)
        yield Wire(read_fd, write_fd)
    finally:
        os.close(null)
        os.dup2(read_fd, 0)
        os.dup2(write_fd, 1)


# ------------------------------------------------------------------------ the prelude


class Loader(Generic[T]):
    """Runs ``load`` (import the SDK, register the tools) in a thread; ``wake_fd`` becomes
    readable when it is done."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._result: T | None = None
        self._error: BaseException | None = None
        self.wake_fd, self._done_fd = os.pipe()
        self._thread = threading.Thread(target=self._run, name="ccstate-sdk-import", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._load()
        except BaseException as exc:  # handed to the main thread by result()
            self._error = exc
        finally:
            os.write(self._done_fd, b"x")

    def result(self) -> T:
        """What ``load`` returned (waiting for it), or what it raised."""
        self._thread.join()
        os.close(self.wake_fd)
        os.close(self._done_fd)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


@dataclass
class Prelude:
    """What was read and answered before the SDK took over."""

    replay: list[bytes]
    opening: Opening


def answer_until_loaded(wire: Wire, opening: Opening, wake_fd: int) -> Prelude:
    """Answer the opening requests the memo knows until the loader is done or a request needs
    the SDK. Every line read is kept, in order, for the SDK to read."""
    replay: list[bytes] = []
    with selectors.DefaultSelector() as selector:
        selector.register(wire.read_fd, selectors.EVENT_READ)
        selector.register(wake_fd, selectors.EVENT_READ)
        while not (opening.over or opening.needs_sdk):
            while not wire.has_line():
                if wire.eof or _loaded(selector, wake_fd):
                    return Prelude(replay, opening)
                wire.fill()
            line = wire.read_line()
            assert line is not None
            replay.append(line)
            response = opening.answer(line)
            if response is not None:
                wire.write(response)
    return Prelude(replay, opening)


def _loaded(selector: selectors.BaseSelector, wake_fd: int) -> bool:
    """Wait until the client writes or the loader is done; True when the loader is."""
    ready = selector.select()
    return any(key.fd == wake_fd for key, _ in ready)


# -------------------------------------------------------------------- the SDK's streams


class ReplayedStdin:
    """The SDK's stdin: the lines the prelude read, then the client's pipe. At its end it waits
    for ``settled`` (the SDK's answers the opening awaits)."""

    def __init__(
        self, wire: Wire, prelude: Prelude, settled: Callable[[], Awaitable[None]]
    ) -> None:
        self._wire = wire
        self._replay = list(prelude.replay)
        self._opening = prelude.opening
        self._settled = settled

    def __aiter__(self) -> ReplayedStdin:
        return self

    async def __anext__(self) -> str:
        if self._replay:
            line: bytes | None = self._replay.pop(0)
        else:
            line = await self._read_line()
            if line is not None:
                self._opening.note(line)
        if line is None:
            await self._settled()
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")

    async def _read_line(self) -> bytes | None:
        """Waiting in the event loop, not in a worker thread: a thread blocked on the pipe
        would keep the process alive after SIGTERM until the client closed it."""
        import anyio

        while not self._wire.has_line() and not self._wire.eof:
            await anyio.wait_readable(self._wire.read_fd)
            self._wire.fill()
        return self._wire.read_line()


class FilteredStdout:
    """The SDK's stdout: its messages to the client, but not its answers to requests the
    prelude answered. The memo is saved when the answers it awaited are in."""

    def __init__(self, wire: Wire, opening: Opening) -> None:
        self._wire = wire
        self._opening = opening
        self._settled: Any = None  # an anyio.Event (made in the event loop)

    async def write(self, text: str) -> None:
        import anyio.to_thread

        if self._opening.keep(text):
            await anyio.to_thread.run_sync(self._wire.write, text.encode("utf-8"))
        if self._opening.memo.changed and not self._opening.awaited:
            await anyio.to_thread.run_sync(self._opening.memo.save)
        if self._settled is not None and not self._opening.awaited:
            self._settled.set()

    async def settled(self) -> None:
        """Wait (at most ``SETTLE_SECONDS``) until the SDK's answers the opening awaits are in:
        at the end of input the SDK drops the requests it has not answered, and a client that
        leaves once the memo has answered would leave a stale answer uncorrected."""
        import anyio

        if not self._opening.awaited:
            return
        self._settled = anyio.Event()
        with anyio.move_on_after(SETTLE_SECONDS):
            await self._settled.wait()

    async def flush(self) -> None:
        return None
