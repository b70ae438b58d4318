"""The stdio prelude's pieces on real pipes and files: which opening requests the memo answers,
what the SDK then reads and writes, and the memo itself (mcp_server/stdio_prelude.py,
mcp_server/stdio_memo.py). The whole server is tested in tests/system/mcp/test_stdio_prelude.py."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ccstate.mcp_server.stdio_memo import MAX_ANSWERS, Memo, code_fingerprint
from ccstate.mcp_server.stdio_prelude import Opening, Wire, answer_until_loaded

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"v": 1}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
CALL = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "x"}}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def recorded_memo(tmp_path: Path, *answers: tuple[dict[str, Any], Any]) -> Memo:
    """A memo holding the SDK's ``answers`` to an opening of these messages (a notification's
    answer: None), recorded the way the server records them."""
    memo = Memo(tmp_path / "memo.json", "f" * 64)
    opening = Opening(memo)
    for message, result in answers:
        opening.note(line(message))
        if "id" in message:
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
            assert opening.keep(json.dumps(reply))
    return memo


@pytest.fixture
def wire() -> Iterator[tuple[Wire, int, int]]:
    """A wire on real pipes; the client's ends: the one it writes to, the one it reads."""
    to_server, from_client = os.pipe()
    to_client, from_server = os.pipe()
    yield Wire(read_fd=to_server, write_fd=from_server), from_client, to_client
    for fd in (to_server, from_client, to_client, from_server):
        with contextlib.suppress(OSError):  # a test may have closed the client's end
            os.close(fd)


@pytest.fixture
def loader_pipe() -> Iterator[tuple[int, int]]:
    """The loader's wake-up pipe: readable once something is written to its second end."""
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def test_the_same_request_is_another_key_after_other_messages(tmp_path: Path) -> None:
    memo = recorded_memo(tmp_path, (LIST, {"tools": ["first"]}))

    first = Opening(memo).answer(line(LIST))
    after_initialize = Opening(memo)
    after_initialize.answer(line(INITIALIZE))  # unknown to the memo: the SDK must answer
    after_a_notification = Opening(memo)
    after_a_notification.answer(line(INITIALIZED))
    other_id = Opening(memo).answer(line({**LIST, "id": 9}))

    assert first is not None and json.loads(first)["result"] == {"tools": ["first"]}
    assert other_id is not None  # ids are not part of what was said
    assert after_initialize.answer(line(LIST)) is None
    assert after_a_notification.answer(line(LIST)) is None


def test_the_answer_carries_the_requests_own_id(tmp_path: Path) -> None:
    memo = recorded_memo(tmp_path, (LIST, {"tools": []}))

    as_string = Opening(memo).answer(line({**LIST, "id": "2"}))
    as_number = Opening(memo).answer(line(LIST))

    assert as_string is not None and json.loads(as_string)["id"] == "2"
    assert as_number is not None and json.loads(as_number)["id"] == 2


def test_notifications_keep_the_opening_other_requests_end_it(tmp_path: Path) -> None:
    opening = Opening(recorded_memo(tmp_path, (LIST, {"tools": []})))

    assert opening.answer(line(INITIALIZED)) is None and not opening.over
    assert opening.answer(line(CALL)) is None and opening.over
    assert opening.answer(line(LIST)) is None  # known, but the opening is over


@pytest.mark.parametrize(
    "bad",
    [
        b"not json\n",
        b"[1, 2]\n",
        line({**LIST, "jsonrpc": "1.0"}),
        line({**LIST, "id": True}),
        line({**LIST, "params": [1]}),  # the SDK never answers it: params are an object
    ],
)
def test_anything_but_a_plain_request_ends_the_opening(tmp_path: Path, bad: bytes) -> None:
    opening = Opening(recorded_memo(tmp_path, (LIST, {"tools": []})))

    assert opening.answer(bad) is None
    assert opening.over


def test_the_sdks_answer_to_an_answered_request_is_dropped_and_compared(tmp_path: Path) -> None:
    memo = recorded_memo(tmp_path, (LIST, {"tools": ["old"]}))
    opening, next_session = Opening(memo), Opening(memo)
    opening.answer(line(LIST))

    same = opening.keep(json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"tools": ["old"]}}))
    next_session.answer(line({**LIST, "id": 7}))
    other = next_session.keep(json.dumps({"jsonrpc": "2.0", "id": 7, "result": {"tools": ["new"]}}))
    later = opening.keep(json.dumps({"jsonrpc": "2.0", "id": 2, "result": {}}))

    assert (same, other, later) == (False, False, True)
    assert list(memo.answers.values()) == [{"tools": ["new"]}]
    assert not opening.awaited and not next_session.awaited


def test_an_error_from_the_sdk_is_not_recorded(tmp_path: Path) -> None:
    memo = Memo(tmp_path / "memo.json", "f" * 64)
    opening = Opening(memo)
    opening.note(line(LIST))

    kept = opening.keep(json.dumps({"jsonrpc": "2.0", "id": 2, "error": {"code": -1}}))

    assert kept and memo.answers == {} and not memo.changed


def test_the_memo_keeps_the_newest_answers_and_saves_them_private(tmp_path: Path) -> None:
    memo = Memo(tmp_path / "cache" / "memo.json", "f" * 64)
    for n in range(MAX_ANSWERS + 3):
        memo.record(f"key-{n}", {"n": n})
    memo.save()

    loaded = Memo.load(tmp_path / "cache" / "memo.json", "f" * 64)
    other_code = Memo.load(tmp_path / "cache" / "memo.json", "e" * 64)

    assert list(loaded.answers) == [f"key-{n}" for n in range(3, MAX_ANSWERS + 3)]
    assert other_code.answers == {}
    assert stat.S_IMODE((tmp_path / "cache" / "memo.json").stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["memo.json"]  # no temp left


def test_the_fingerprint_follows_sources_and_installs(tmp_path: Path) -> None:
    sources, site = tmp_path / "src", tmp_path / "site"
    (sources / "pkg").mkdir(parents=True)
    site.mkdir()
    module = sources / "pkg" / "tools.py"
    module.write_text("A = 1\n")

    def fingerprint() -> str:
        return code_fingerprint([str(sources)], [str(site)])

    first = fingerprint()
    same = fingerprint()
    module.write_text("A = 22\n")
    edited = fingerprint()
    (site / "mcp-9.0.dist-info").mkdir()
    installed = fingerprint()
    (sources / "pkg" / "__pycache__").mkdir()
    (sources / "pkg" / "__pycache__" / "tools.cpython-311.pyc").write_bytes(b"x")

    assert first == same
    assert len({first, edited, installed}) == 3
    assert fingerprint() == installed  # compiled files are not sources


def test_the_prelude_answers_until_a_request_needs_the_sdk(
    tmp_path: Path, wire: tuple[Wire, int, int], loader_pipe: tuple[int, int]
) -> None:
    the_wire, client_writes, client_reads = wire
    memo = recorded_memo(
        tmp_path, (INITIALIZE, {"hello": 1}), (INITIALIZED, None), (LIST, {"tools": []})
    )
    os.write(client_writes, b"".join(map(line, [INITIALIZE, INITIALIZED, LIST, CALL])) + b'{"p')

    prelude = answer_until_loaded(the_wire, Opening(memo), loader_pipe[0])

    assert prelude.replay == [line(INITIALIZE), line(INITIALIZED), line(LIST), line(CALL)]
    assert the_wire.buffer == b'{"p'  # left for the SDK to read
    answers = [json.loads(a) for a in os.read(client_reads, 65536).splitlines()]
    assert answers == [
        {"jsonrpc": "2.0", "id": 1, "result": {"hello": 1}},
        {"jsonrpc": "2.0", "id": 2, "result": {"tools": []}},
    ]


def test_the_prelude_hands_over_when_the_sdk_is_loaded(
    tmp_path: Path, wire: tuple[Wire, int, int], loader_pipe: tuple[int, int]
) -> None:
    the_wire, client_writes, _ = wire
    memo = recorded_memo(tmp_path, (INITIALIZE, {"hello": 1}))
    os.write(client_writes, line(INITIALIZE) + b'{"jsonrpc": "2.0", "id": 2, "meth')
    os.write(loader_pipe[1], b"x")

    prelude = answer_until_loaded(the_wire, Opening(memo), loader_pipe[0])
    os.write(client_writes, b'od": "tools/list"}\n')
    os.close(client_writes)

    assert prelude.replay == []  # the SDK was ready first: it reads everything itself
    assert the_wire.read_line() == line(INITIALIZE)
    assert the_wire.read_line() == b'{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}\n'
    assert the_wire.read_line() is None


def test_end_of_input_ends_the_prelude(
    tmp_path: Path, wire: tuple[Wire, int, int], loader_pipe: tuple[int, int]
) -> None:
    the_wire, client_writes, _ = wire
    os.write(client_writes, line(INITIALIZED) + b'{"cut')
    os.close(client_writes)

    prelude = answer_until_loaded(the_wire, Opening(recorded_memo(tmp_path)), loader_pipe[0])

    assert prelude.replay == [line(INITIALIZED), b'{"cut']  # as readline gives a last line
    assert the_wire.read_line() is None


def test_a_reused_id_ends_the_opening_and_nothing_more_is_recorded(tmp_path: Path) -> None:
    memo = recorded_memo(tmp_path, (LIST, {"tools": ["listed"]}))
    opening = Opening(memo)
    prompts = {"jsonrpc": "2.0", "id": LIST["id"], "method": "prompts/list"}

    answered = opening.answer(line(LIST))
    reused = opening.answer(line(prompts))
    first = opening.keep(json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"prompts": []}}))
    second = opening.keep(json.dumps({"jsonrpc": "2.0", "id": 2, "result": {"tools": []}}))

    assert answered is not None and reused is None and opening.over
    assert (first, second) == (False, True)  # one answer per request reaches the client
    assert list(memo.answers.values()) == [{"tools": ["listed"]}]


def test_a_memo_that_cannot_be_written_leaves_nothing_behind(tmp_path: Path) -> None:
    """Here the memo's path is a folder: the save fails, and is logged (the memo only saves
    time); no temporary file is left in the cache, save after save."""
    path = tmp_path / "cache" / "memo.json"
    path.mkdir(parents=True)
    memo = Memo.load(path, "f" * 64)
    for n in range(3):
        memo.record(f"key-{n}", {"n": n})
        memo.save()

    assert [p.name for p in path.parent.iterdir()] == ["memo.json"]


def test_a_long_line_in_many_reads_and_short_lines_in_one_come_out_whole(
    wire: tuple[Wire, int, int],
) -> None:
    the_wire, client_writes, _ = wire
    long_line = b'{"x": "' + b"a" * (3 * 65536 + 17) + b'"}\n'
    sent = long_line + b"1\n2\n" + long_line + b"3"
    writer = threading.Thread(target=_write_in_pieces, args=(client_writes, sent, 4096))
    writer.start()

    lines = []
    while (got := the_wire.read_line()) is not None:
        lines.append(got)
    writer.join()

    assert lines == [long_line, b"1\n", b"2\n", long_line, b"3"]


def _write_in_pieces(fd: int, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        os.write(fd, data[start : start + size])
    os.close(fd)


def test_the_fingerprint_follows_the_folder_the_sdk_is_imported_from(tmp_path: Path) -> None:
    """An SDK checkout put first on PYTHONPATH has no ``.dist-info`` beside it."""
    installed, checkout = tmp_path / "site-packages", tmp_path / "checkout"
    installed.mkdir()
    checkout.mkdir()

    assert code_fingerprint([], [str(installed)]) != code_fingerprint([], [str(checkout)])


def test_the_fingerprint_stands_an_editors_lock_file(tmp_path: Path) -> None:
    """Emacs marks a modified buffer with a dangling link ``.#name.py`` beside the file: `ccstate
    serve` in a checkout being edited must still start."""
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "tools.py").write_text("A = 1\n")
    before = code_fingerprint([str(sources)], [])
    (sources / ".#tools.py").symlink_to("someone@host.4242:1700000000")

    assert code_fingerprint([str(sources)], []) != before
