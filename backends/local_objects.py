"""The ObjectStore port on a local directory: write-once files, atomic replace, compare-and-swap.

Layout: key 'default/log/00000000000000000042.json' is the file ``<root>/default/log/0...42.json``.
Bodies are published only when complete (temp file + fsync + link/rename + directory fsync), so a
process killed mid-write leaves at most a hidden temp file, never a truncated object.

The ETag is the sha256 of the body. A metadata tag (mtime_ns + size + inode) could match falsely:
inodes are reused after unlink and mtime granularity can be coarser than two quick writes. A
content digest matches only the same bytes, which is also what S3's ETag means.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from ccstate.backends import local_listing, local_serials
from ccstate.backends.local_files import (
    exclusive_flock,
    fsync_dir,
    is_hidden,
    os_errors_as_backend_errors,
    remove_if_stale_temp,
    write_temp,
)
from ccstate.service.errors import BackendError, InvalidInput, PreconditionFailed
from ccstate.service.ports import StoredObject

# Serialises put/delete against if_match checks of other processes, per directory.
_CAS_LOCK_NAME = ".ccstate-cas.lock"
_MAX_SEGMENT_BYTES = 255
_CONTROL = re.compile("[\x00-\x1f\x7f]")  # checked on every key: a scan, not a loop per char
_PATHS_KEPT = 4096  # checked keys remembered per store (a token's record is read several times)


def etag_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def validate_key(key: str) -> str:
    problem = _key_problem(key)
    if problem:
        raise InvalidInput(
            f"Invalid object key {key!r}: {problem}.",
            next_step="Use a relative '/'-separated key such as "
            "'default/log/00000000000000000042.json' (this is a bug in the caller).",
        )
    return key


def _key_problem(key: object) -> str:
    if not isinstance(key, str) or not key:
        return "it is empty"
    if key.startswith("/"):
        return "it is absolute (starts with '/')"
    return _segments_problem(key.split("/"))


def _segments_problem(segments: list[str]) -> str:
    for segment in segments:
        if segment == "":
            return "it has an empty path segment ('//' or a trailing '/')"
        if "\x00" in segment:
            return "it contains NUL"
        if "\\" in segment:
            return "it contains a backslash"
        if _CONTROL.search(segment):
            return "it contains control characters"
        if segment in (".", ".."):
            return f"it contains a '{segment}' path segment"
        if is_hidden(segment):
            return "a segment starts with '.', which is reserved for the store's own files"
        if len(segment.encode()) > _MAX_SEGMENT_BYTES:
            return f"a segment is longer than {_MAX_SEGMENT_BYTES} bytes"
    return ""


def is_reserved(segments: list[str]) -> bool:
    """Names the local backend keeps for itself beside the objects: lock files and exports."""
    if segments in (["state.json"], [segments[0], "state.json"]):
        return True
    return len(segments) >= 2 and segments[1] == "locks"


def _validate_prefix(prefix: str) -> None:
    """A prefix is a key, or the start of one: it may end with '/' or with part of a name."""
    if prefix == "":
        return
    if not isinstance(prefix, str) or prefix.startswith("/"):
        raise InvalidInput(
            f"Invalid key prefix {prefix!r}: it must be relative.",
            next_step="Use a prefix such as 'default/log/'.",
        )
    segments = prefix.split("/")
    if segments[-1] == "":
        segments = segments[:-1]
    problem = _segments_problem(segments)
    if problem:
        raise InvalidInput(
            f"Invalid key prefix {prefix!r}: {problem}.",
            next_step="Use a prefix such as 'default/log/'.",
        )


class LocalObjectStore:
    """ObjectStore on a directory.

    Reads run inline (page cache, ~0.1 ms). Writes run in a worker thread: each costs two
    fsyncs (about 1 ms on a local SSD, far more on network disks) and inline they would stall
    every other request of the server's event loop meanwhile (docs/backends.md has the numbers).
    """

    # ``get`` reads inline and never yields: a caller reading many keys need not gather them.
    reads_inline = True

    def __init__(self, root: Path) -> None:
        # The root (0700) is made by the first write: a read of a state that does not exist yet
        # (`ccstate state versions` on a new machine) leaves no directory behind.
        self.root = Path(root).expanduser().absolute()
        # key -> its checked path: a key is checked once, not at every read of a hot object.
        self._paths: dict[str, Path] = {}

    def describe(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        path = self._paths.get(key) if isinstance(key, str) else None
        if path is None:
            path = self._checked_path(key)
            if len(self._paths) >= _PATHS_KEPT:
                self._paths.clear()
            self._paths[key] = path
        return path

    def _checked_path(self, key: str) -> Path:
        segments = validate_key(key).split("/")
        if is_reserved(segments):
            raise InvalidInput(
                f"Object key {key!r} is reserved: the local backend keeps lock files under "
                "'<workspace>/locks/' and the readable export at 'state.json' and "
                "'<workspace>/state.json'.",
                next_step="Store objects under another name (this is a bug in the caller).",
            )
        return self.root.joinpath(*segments)

    # ------------------------------------------------------------------ reads

    async def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        with os_errors_as_backend_errors("read", path):
            body = _read_or_none(path)
            if body is not None:
                local_serials.sweep_dead_ticket(path.parent, path.name)
        return None if body is None else StoredObject(body=body, etag=etag_of(body))

    async def list_keys(self, prefix: str, *, start_after: str = "") -> list[str]:
        _validate_prefix(prefix)
        base_dir = self.root.joinpath(*prefix.split("/")[:-1])
        with os_errors_as_backend_errors("list", base_dir):
            quick = self._serials_after(prefix, base_dir, start_after)
            if quick is not None:
                return quick
            found = [key for key in self._walk(base_dir) if key.startswith(prefix)]
        return sorted(key for key in found if key > start_after)

    def _serials_after(self, prefix: str, base_dir: Path, start_after: str) -> list[str] | None:
        """The keys after a serial-named ``start_after`` in a log-like directory, found without
        reading the directory (local_listing); None when that cannot be answered exactly."""
        if not prefix.endswith("/") or not start_after.startswith(prefix):
            return None
        serial = local_listing.serial_of_name(start_after[len(prefix) :])
        if serial is None:
            return None
        names = local_listing.serials_after(base_dir, serial)
        return None if names is None else [prefix + name for name in names]

    def _walk(self, directory: Path) -> Iterator[str]:
        if not directory.is_dir():
            return
        now = time.time()
        for dirpath, dirnames, filenames in os.walk(directory):
            here = Path(dirpath)
            relative = here.relative_to(self.root).as_posix()
            parents = [] if relative == "." else relative.split("/")
            dirnames[:] = [
                name
                for name in dirnames
                if not is_hidden(name) and not is_reserved([*parents, name])
            ]
            visible = []
            for name in filenames:
                if is_hidden(name):
                    remove_if_stale_temp(here / name, now=now)
                elif not is_reserved([*parents, name]):
                    visible.append(name)
                    yield "/".join([*parents, name])
            local_listing.rebuild(here, visible + dirnames)

    # ------------------------------------------------------------------ writes

    async def put_if_absent(self, key: str, body: bytes) -> bool:
        return await asyncio.to_thread(self._put_if_absent, self._path(key), body)

    async def put(self, key: str, body: bytes, *, if_match: str | None = None) -> str:
        return await asyncio.to_thread(self._put, key, self._path(key), body, if_match)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, self._path(key))

    async def existed(self, key: str) -> bool:
        """Whether ``key`` is there or was once. Files keep no history, so only a log serial
        handed out by the local sequencer can tell: absent and without its ticket, it was
        written and removed (``local_serials.was_written``). Elsewhere a deleted file leaves
        no trace (the store finds gaps by the commits after them, the snapshot pointer and the
        export instead)."""
        path = self._path(key)
        with os_errors_as_backend_errors("read", path):
            return path.is_file() or local_serials.was_written(path.parent, path.name)

    async def stage_if_absent(self, key: str, body: bytes) -> StagedPut:
        """``put_if_absent`` in two steps: the body is written and fsynced now, published
        (or discarded) later. A writer with a serial handed out stages its commit while the
        commits before it are still being written, so their fsyncs overlap."""
        path = self._path(key)
        tmp = await asyncio.to_thread(self._stage, path, body)
        return StagedPut(self, path, tmp)

    def _stage(self, path: Path, body: bytes) -> Path:
        with os_errors_as_backend_errors("write", path):
            local_listing.prepare_put(path.parent, path.name)
            return write_temp(path.parent, body)

    def _put_if_absent(self, path: Path, body: bytes) -> bool:
        tmp = self._stage(path, body)
        if not self._link(path, tmp):
            return False
        self._made_durable(path)
        return True

    def _link(self, path: Path, tmp: Path) -> bool:
        """Publish the staged ``tmp`` at ``path``; False (and nothing changed) when taken."""
        with os_errors_as_backend_errors("write", path):
            try:
                # link(2) publishes the complete, fsynced temp inode under the final name in one
                # step and fails with EEXIST when the name is taken. O_CREAT|O_EXCL on the final
                # name would also fail-if-exists, but the file would be visible empty while we
                # write it and stay truncated if we were killed: readers could see half a commit.
                os.link(tmp, path)
            except FileExistsError:
                local_serials.remove_ticket(path.parent, path.name)
                return False
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise _no_hard_links(self.root) from exc
                raise
            finally:
                tmp.unlink(missing_ok=True)
        return True

    def _made_durable(self, path: Path) -> None:
        with os_errors_as_backend_errors("write", path):
            fsync_dir(path.parent)
            # Only now that the commit is durable: a serial without file or ticket is one that
            # was written and removed (local_serials.was_written).
            local_serials.remove_ticket(path.parent, path.name)
            local_listing.note_put(path.parent, path.name)

    def _put(self, key: str, path: Path, body: bytes, if_match: str | None) -> str:
        with os_errors_as_backend_errors("write", path):
            local_listing.prepare_put(path.parent, path.name)
            tmp = write_temp(path.parent, body)
            try:
                with exclusive_flock(path.parent / _CAS_LOCK_NAME):
                    if if_match is not None:
                        _check_etag(key, path, if_match)
                    os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(path.parent)
            local_listing.note_put(path.parent, path.name)
        return etag_of(body)

    def _delete(self, path: Path) -> None:
        if not path.parent.is_dir():
            return
        with (
            os_errors_as_backend_errors("delete", path),
            exclusive_flock(path.parent / _CAS_LOCK_NAME),
        ):
            if path.is_file():
                path.unlink(missing_ok=True)
                fsync_dir(path.parent)


class StagedPut:
    """A body written beside its key, not yet visible there (``stage_if_absent``)."""

    def __init__(self, store: LocalObjectStore, path: Path, tmp: Path) -> None:
        self._store, self._path, self._tmp = store, path, tmp

    async def publish(self) -> bool:
        """Link the body at its key; False (and nothing changed) when the key is taken. The
        link is made inline (one syscall), so that writers waiting for this serial see it
        without a thread hop; the directory's fsync follows in a worker thread."""
        if not self._store._link(self._path, self._tmp):
            return False
        await asyncio.to_thread(self._store._made_durable, self._path)
        return True

    def discard(self) -> None:
        """Remove the staged body if it was not published (publishing removes it too)."""
        self._tmp.unlink(missing_ok=True)


def _read_or_none(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as file:  # not Path.read_bytes: a few layers less per read
            return file.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _check_etag(key: str, path: Path, expected: str) -> None:
    body = _read_or_none(path)
    current = None if body is None else etag_of(body)
    if current != expected:
        state = "is absent" if current is None else "was changed by another writer"
        raise PreconditionFailed(
            f"Conditional write of {key!r} refused: the object {state} since it was read.",
            next_step="Read the object again and reapply the change on top of it.",
            key=key,
        )


def _no_hard_links(root: Path) -> BackendError:
    return BackendError(
        f"The filesystem under {root} does not support hard links, which the local backend "
        "needs for atomic write-once commits.",
        next_step="Put the state directory on a local POSIX filesystem (ext4, xfs, apfs, tmpfs) "
        "or use an s3:// backend.",
    )
