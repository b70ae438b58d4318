"""The Sequencer port on a local directory: a counter file and one ticket file per serial.

``<root>/<workspace>/log/.ccstate-serial`` holds the highest serial handed out (20 digits, 0600).
A ticket is taken under an exclusive ``flock`` of that file: create ``.ccstate-ticket-<serial>``
beside the commits and ``flock`` it, then write the new count. Each writer thus gets its own
serial without a race to lose, and writers fsync their commit bodies in parallel.

**Liveness.** The writer holds the flock of its ticket until its commit is linked (or withdrawn,
or refused), and takes it while the counter's flock is held, so no serial is ever handed out
without a locked ticket. The kernel releases a flock when its process dies: a reader waiting
for a serial whose ticket it can lock (``abandoned``) knows nobody will write it and voids it
at once, where S3 must wait ``hole_grace``. The grace stays the fallback for everything else (a
live writer stuck, a ticket held by a forked child, a filesystem whose flocks do not cross
machines: the local backend is for one machine).

The ticket file is what tells a hole from a deleted commit, which S3 reads from the object's
versions: the object store removes a serial's ticket once a commit (or a void) is at that name
(``LocalObjectStore._made_durable``), so a serial handed out that has neither a file nor a
ticket was written and then removed (``was_written``), and is reported, never voided. The
ticket is created *before* the counter moves: a writer killed between the two leaves a ticket
for a serial not yet handed out, which the next writer takes over. The ticket's directory
entry is made durable by the directory fsync of any later commit.

A ticket also declares the resources its commit will touch (``declared``): a commit not made
under locks, which must check the commits before its serial for conflicts, need not wait for
one still being written that declared other resources (``AppendMixin._before_ours``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from ccstate.backends.local_files import (
    FILE_MODE,
    TEMP_PREFIX,
    fsync_dir,
    os_errors_as_backend_errors,
)
from ccstate.backends.local_listing import (
    SERIAL_DIGITS,
    TICKET_PREFIX,
    ensure_listed_dir,
    serial_of_name,
)

COUNTER_NAME = ".ccstate-serial"
# The tickets this process holds, by path: the open file whose flock says "my writer lives".
# Per process, not per sequencer: the object store lets go of one when its commit is linked.
_HELD: dict[str, int] = {}
# A spent ticket of this process per log directory, kept (renamed, still open) to be renamed
# into the next ticket: a create and an unlink per commit cost the journal an
# inode's allocation and release, measured at 10-20% of a single writer's commits.
_SPARE: dict[str, tuple[str, int]] = {}
_SPARE_TURN = threading.Lock()  # tickets are spent in worker threads, taken in the loop's


def ticket_path(directory: Path, serial: int) -> Path:
    return directory / f"{TICKET_PREFIX}{serial}"


def remove_ticket(directory: Path, name: str) -> None:
    """After a commit (or a void) is at serial ``name``: its ticket, if any, is spent. Our own
    hold on it goes first (the commit is linked, so a reader who finds the lock free reads
    it): closing a file already unlinked costs the inode's release on the close, measured
    at 0.25-0.35 ms after the directory's fsync."""
    serial = serial_of_name(name)
    if serial is None:
        return
    path = ticket_path(directory, serial)
    fd = _HELD.pop(str(path), None)
    if fd is not None and _keep_as_spare(directory, path, fd):
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def sweep_dead_ticket(directory: Path, name: str) -> None:
    """Serial ``name`` was just read, so it is written: a ticket still there that nobody holds
    is one whose writer was killed between linking its commit and removing the ticket. Left,
    it would make the commit, if later removed by hand, look like a serial nobody wrote
    (voided, not reported: ``was_written``). The directory is fsynced first, since that writer
    may have died before making its commit's entry durable. One ``lstat`` when there is none."""
    serial = serial_of_name(name)
    if serial is None:
        return
    path = f"{directory}/{TICKET_PREFIX}{serial}"  # a string: this runs at every read
    if not os.path.lexists(path):
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: its live writer removes it
        fsync_dir(directory)
        os.unlink(path)
    except OSError:
        pass  # held, or removed meanwhile: either way not ours to remove
    finally:
        os.close(fd)


def _keep_as_spare(directory: Path, ticket: Path, fd: int) -> bool:
    """Our spent ``ticket`` renamed to a temp name and kept open (its flock let go) as the
    directory's spare; False (``fd`` closed) when there is one already or the rename fails.
    A spare left by a killed process is a stale temp file, swept by the next listing."""
    with _SPARE_TURN:
        if str(directory) not in _SPARE:
            spare = str(directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}")
            try:
                os.rename(ticket, spare)
            except OSError:
                pass
            else:
                # Unlocked while spare: between commits the process holds no flock (a pause
                # then holds up nobody, and tests stop processes outside their flocks).
                fcntl.flock(fd, fcntl.LOCK_UN)
                _SPARE[str(directory)] = (spare, fd)
                return True
    os.close(fd)
    return False


def _reuse_spare(directory: Path, ticket: Path) -> int | None:
    """Our spare ticket file, flock'ed again, renamed to ``ticket``; None when there
    is none, or a ticket of that name is there already (a dead or live writer's: the caller
    looks at its lock)."""
    with _SPARE_TURN:
        spare = _SPARE.get(str(directory))
        if spare is None or os.path.lexists(ticket):
            return None
        del _SPARE[str(directory)]
    try:
        fcntl.flock(spare[1], fcntl.LOCK_EX | fcntl.LOCK_NB)  # before its ticket name exists
        os.rename(spare[0], ticket)
    except OSError:  # swept as a stale temp file meanwhile
        os.close(spare[1])
        return None
    return spare[1]


@atexit.register
def _drop_spares() -> None:
    with _SPARE_TURN:
        for path, fd in _SPARE.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)
        _SPARE.clear()


def _let_go(path: str) -> None:
    fd = _HELD.pop(path, None)
    if fd is not None:
        os.close(fd)  # releases the flock


def handed_out(directory: Path) -> int | None:
    """The counter of a sequenced log directory; None when the log has none (no tickets)."""
    try:
        fd = os.open(directory / COUNTER_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a read never sees a count half written
        return _parse(os.pread(fd, SERIAL_DIGITS + 1, 0))
    finally:
        os.close(fd)


def was_written(directory: Path, name: str) -> bool:
    """Whether serial ``name``, absent now, was written once: it was handed out and its ticket
    is gone (the object store removes it only once the serial's file exists)."""
    serial = serial_of_name(name)
    return serial is not None and _spent(directory, serial)


def _spent(directory: Path, serial: int) -> bool:
    counter = handed_out(directory)
    if counter is None or serial > counter:
        return False
    return not os.path.lexists(ticket_path(directory, serial))


def _parse(raw: bytes) -> int:
    """The count; 0 when the file is new or unreadable (say zeros after a crash): the log is
    the truth, and the first load of a store moves the counter past every serial written."""
    text = raw.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else 0


class LocalSequencer:
    """Serials for the local backend's logs (``Sequencer``), one counter file per workspace."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()

    def _log_dir(self, workspace: str) -> Path:
        return self.root / workspace / "log"

    async def next_serial(self, workspace: str) -> int:
        return await self.next_serial_for(workspace, None)

    async def next_serial_for(self, workspace: str, touched: set[str] | None) -> int:
        """A serial whose ticket declares what its commit will touch (``declared``).
        Inline, not in a worker thread: no fsync, and the flock is held for a few syscalls by
        whoever has it, cheaper than the thread hop."""
        claim = b"" if touched is None else json.dumps(sorted(touched)).encode() + b"\n"
        return self._take(self._log_dir(workspace), claim)

    async def declared(self, workspace: str, serial: int) -> set[str] | None:
        """What the commit at ``serial``, handed out and not yet written, will touch; None when
        unknown (no ticket any more, none declared, or read while being written)."""
        raw = _read_claim(ticket_path(self._log_dir(workspace), serial))
        if raw is None or not raw.endswith(b"\n"):
            return None
        try:
            names = json.loads(raw)
        except ValueError:
            return None
        return set(names) if isinstance(names, list) else None

    async def current(self, workspace: str) -> int:
        directory = self._log_dir(workspace)
        with os_errors_as_backend_errors("read", directory / COUNTER_NAME):
            return handed_out(directory) or 0

    async def advance_to(self, workspace: str, serial: int) -> None:
        await asyncio.to_thread(self._advance, self._log_dir(workspace), serial)

    async def abandoned(self, workspace: str, serial: int) -> bool:
        """Whether the writer of ``serial``, handed out and not yet written, is gone: its
        ticket is there and nobody holds the ticket's flock. A writer holds it from the moment
        the serial is handed out until its commit is linked (or withdrawn, or refused), and
        the kernel releases it when the writer's process dies, so a free lock on a ticket
        means nobody will write that serial: readers void it at once instead of waiting out
        ``hole_grace``. A serial handed out whose ticket is gone was written (the ticket goes
        once its file is linked): nobody will write it again either, and the reader finds it
        written meanwhile, or deleted (``_void`` reports that at once; it used to wait out the
        grace first). False when the ticket is held, or the serial was not handed out here."""
        directory = self._log_dir(workspace)
        path = ticket_path(directory, serial)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return await asyncio.to_thread(_spent, directory, serial)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False  # held (EWOULDBLOCK): its writer is alive
        finally:
            os.close(fd)  # releases our shared lock at once
        return True

    def release(self, workspace: str, serial: int) -> None:
        """The writer of ``serial`` is done with it (written, withdrawn or refused): its lock
        on the ticket goes. The object store removed the ticket file first when the commit
        (or a void) was linked, so a reader never sees a free ticket whose commit is coming."""
        _let_go(str(ticket_path(self._log_dir(workspace), serial)))

    def _take(self, directory: Path, claim: bytes) -> int:
        """The next serial, its ticket created and flock'ed while the counter's flock is held:
        a serial is never handed out without a locked ticket. A ticket already there above the
        count is one whose writer died before moving the counter (taken over); one that is
        locked belongs to a live writer of a count set back by hand, so that serial is
        skipped."""
        with _counter(directory) as fd:
            serial = _read(fd)
            while True:
                serial += 1
                ticket_fd = _reuse_spare(directory, ticket_path(directory, serial))
                if ticket_fd is not None:
                    break
                ticket_fd = os.open(
                    ticket_path(directory, serial), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
                )
                try:
                    fcntl.flock(ticket_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(ticket_fd)
                    continue
                except BaseException:
                    os.close(ticket_fd)
                    raise
                break
            try:
                if os.fstat(ticket_fd).st_size:  # a spare, or a dead writer's taken over
                    os.ftruncate(ticket_fd, 0)
                os.pwrite(ticket_fd, claim, 0)  # ends with a newline: read before it, unknown
                _write(fd, serial)
            except BaseException:
                os.close(ticket_fd)
                raise
            _HELD[str(ticket_path(directory, serial))] = ticket_fd
        return serial

    def _advance(self, directory: Path, serial: int) -> None:
        with _counter(directory) as fd:
            if _read(fd) < serial:
                _write(fd, serial)


@contextlib.contextmanager
def _counter(directory: Path) -> Iterator[int]:
    """The counter file, created 0600 with its directory, held under an exclusive flock."""
    path = directory / COUNTER_NAME
    with os_errors_as_backend_errors("write", path):
        ensure_listed_dir(directory)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the flock


def _read_claim(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as file:  # inline, as the object store's reads: page cache
            return file.read()
    except OSError:
        return None


def _read(fd: int) -> int:
    return _parse(os.pread(fd, SERIAL_DIGITS + 1, 0))


def _write(fd: int, serial: int) -> None:
    # Fixed width: the file never shrinks, so one pwrite replaces the count whole. Not synced:
    # an fdatasync under the flock cost 1.5-5 ms per ticket on this machine's loaded disk, for
    # every writer in turn. A count lost in a crash is found again from the log (the first
    # load lists it, ``StateStore._discover``); a serial handed out twice is refused by the
    # write-once put to all but one (the others take a new ticket).
    os.pwrite(fd, f"{serial:0{SERIAL_DIGITS}d}".encode(), 0)
