"""Private, durable file primitives shared by the local object store and the local lock manager.

Everything created here is 0600 (files) or 0700 (directories) whatever the process umask is:
modes are passed at creation *and* set again with chmod, because the umask can only remove bits.
Hidden names (a leading '.') are reserved for this bookkeeping: temp files, flock files.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ccstate.service.errors import BackendError

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
TEMP_PREFIX = ".ccstate-tmp-"
# A writer finishes a temp file in milliseconds; one older than this was left by a killed process.
STALE_TEMP_SECONDS = 600.0


def fsync_dir(path: Path) -> None:
    """Make a directory entry change (create, link, rename, unlink) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` and any missing ancestors as 0700 directories; existing ones are kept."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # a concurrent writer created it first
        os.chmod(directory, DIR_MODE)
        fsync_dir(directory.parent)


def write_temp(directory: Path, body: bytes) -> Path:
    """A fully written, fsynced 0600 temp file in ``directory`` (same filesystem as the target)."""
    tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(body)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def replace_atomically(path: Path, body: bytes) -> None:
    """Create or replace ``path`` so that readers see the old body or the new one, never a mix."""
    ensure_private_dir(path.parent)
    tmp = write_temp(path.parent, body)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def replace_with(path: Path, write: Callable[[int], None]) -> os.stat_result:
    """As ``replace_atomically``, the body written by ``write(fd)`` into the temp file; returns
    the new file's stat, taken from its descriptor after the rename (so it is this file's,
    whatever another process renames over ``path`` meanwhile)."""
    ensure_private_dir(path.parent)
    tmp = path.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        write(fd)
        os.fsync(fd)
        os.replace(tmp, path)
        written = os.fstat(fd)
    finally:
        os.close(fd)
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return written


@contextlib.contextmanager
def exclusive_flock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) for the duration of the block.

    The kernel drops the lock when the process dies, so a crashed holder never blocks anyone.
    Callers keep the block to a few file operations: never the user's work.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def is_hidden(name: str) -> bool:
    return name.startswith(".")


def remove_if_stale_temp(path: Path, *, now: float | None = None) -> None:
    """Delete a temp file that a killed writer left behind; fresh ones belong to live writers."""
    if not path.name.startswith(TEMP_PREFIX):
        return
    try:
        age = (now if now is not None else time.time()) - path.stat().st_mtime
        if age > STALE_TEMP_SECONDS:
            path.unlink()
            log.info("removed temp file %s left by an interrupted writer", path)
    except OSError:
        pass  # raced with its writer or another cleaner: either way it is not ours to report


@contextlib.contextmanager
def os_errors_as_backend_errors(action: str, where: Path) -> Iterator[None]:
    """Turn an OSError (no space, no permission, ...) into a BackendError that says what to do."""
    try:
        yield
    except OSError as exc:
        raise BackendError(
            f"Could not {action} {where}: {exc.strerror or exc}.",
            next_step=f"Check free space and that {where.parent} is writable by this user.",
            errno=exc.errno,
        ) from exc
