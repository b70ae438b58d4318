"""The LockManager port on files: the lease protocol of ARCHITECTURE.md under ``<ws>/locks/``.

    <root>/<workspace>/locks/.mutex                     flock'd for one read-check-write (~1 ms)
    <root>/<workspace>/locks/workspace.json             the workspace lease
    <root>/<workspace>/locks/resources/<sha256>.json    one lease per resource identifier
    <root>/<workspace>/locks/fence                      the last fencing token handed out

Identifiers may contain '/', so files are named by their sha256 and the identifier is kept inside.
Correctness comes from the lease (``expires``), not from the flock: the flock only makes each
read-check-write step atomic between processes, and the kernel drops it if its holder dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from ccstate.backends.local_files import (
    ensure_private_dir,
    exclusive_flock,
    os_errors_as_backend_errors,
    replace_atomically,
)
from ccstate.service.errors import (
    BackendError,
    InvalidInput,
    LockLost,
    LockNotFound,
    LockTimeout,
)
from ccstate.service.names import validate_identifier, validate_workspace
from ccstate.service.ports import Clock, LockInfo, LockScope, SystemClock
from ccstate.service.retry import full_jitter, poll

log = logging.getLogger(__name__)

_FORMAT = "ccstate.lock/1"
_LOCK_ID = re.compile(r"^[0-9a-f]{16}$")
# Full jitter from 50 ms up to 2 s: contenders that collided once do not collide again in
# lockstep, and a freed lock is seen within 2 s.
LOCK_WAIT = full_jitter(0.05, 2.0)


def ccstate_version() -> str:
    try:
        return metadata.version("ccstate")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class LocalLockManager:
    def __init__(self, root: Path, clock: Clock | None = None) -> None:
        self.root = Path(root).expanduser().absolute()
        self.clock: Clock = clock or SystemClock()
        self._turns: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
            WeakKeyDictionary()
        )

    # ------------------------------------------------------------------ paths and files

    def _locks_dir(self, workspace: str) -> Path:
        return self.root / validate_workspace(workspace) / "locks"

    def _lock_path(self, scope: LockScope) -> Path:
        locks = self._locks_dir(scope.workspace)
        if scope.resource is None:
            return locks / "workspace.json"
        digest = hashlib.sha256(validate_identifier(scope.resource).encode()).hexdigest()
        return locks / "resources" / f"{digest}.json"

    def _mutex(self, workspace: str) -> AbstractContextManager[None]:
        locks = self._locks_dir(workspace)
        ensure_private_dir(locks)
        return exclusive_flock(locks / ".mutex")

    def _live(self, info: LockInfo | None) -> LockInfo | None:
        return info if info is not None and info.expires >= self.clock.now() else None

    def _blocker(self, scope: LockScope) -> LockInfo | None:
        """The live lease that stands in the way of ``scope``, if any (caller holds the mutex)."""
        own = self._live(_read_lock(self._lock_path(scope)))
        if own is not None:
            return own
        if scope.is_workspace:
            for info in _read_all(self._locks_dir(scope.workspace) / "resources"):
                if self._live(info) is not None:
                    return info
            return None
        return self._live(_read_lock(self._lock_path(LockScope(scope.workspace))))

    # ------------------------------------------------------------------ the port

    async def acquire(
        self,
        scope: LockScope,
        *,
        operation: str,
        who: str,
        lease_seconds: float,
        timeout: float,
    ) -> LockInfo:
        _check_durations(lease_seconds, timeout)
        path = self._lock_path(scope)

        def attempt() -> tuple[LockInfo | None, LockInfo | None]:
            """(our new lock, None) when taken, else (None, the live lease in the way)."""
            with os_errors_as_backend_errors("lock", path), self._mutex(scope.workspace):
                blocker = self._blocker(scope)
                if blocker is not None:
                    return None, blocker
                info = self._new_lock(scope, operation=operation, who=who, lease=lease_seconds)
                info = replace(info, fence=self._next_fence(scope.workspace))
                _write_lock(path, info)
                return info, None

        taken, blocker = await poll(
            lambda: self._attempt_in_thread(scope.workspace, attempt),
            done=lambda answer: answer[0] is not None,
            timeout=timeout,
            wait=LOCK_WAIT,
        )
        if taken is None:
            raise _timeout_error(scope, blocker, timeout)
        return taken

    async def _attempt_in_thread(
        self, workspace: str, attempt: Callable[[], tuple[LockInfo | None, LockInfo | None]]
    ) -> tuple[LockInfo | None, LockInfo | None]:
        """One acquire attempt in a worker thread: its dozen file operations (flock, reads,
        fsyncs) would each stall the event loop, and wait for the interpreter lock after
        each system call while the store's writer threads hold it. A caller cancelled
        meanwhile never learns of a lock the thread took: that lock is released again."""
        async with self._turn(workspace):
            running = asyncio.ensure_future(asyncio.to_thread(attempt))
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                running.add_done_callback(self._release_abandoned)
                raise

    def _turn(self, workspace: str) -> asyncio.Lock:
        """This process's lock file work for ``workspace``, one at a time: threads of one
        process never wait on each other's flock, so none is parked holding a worker thread
        that the object store's writes need."""
        turns = self._turns.setdefault(asyncio.get_running_loop(), {})
        return turns.setdefault(workspace, asyncio.Lock())

    def _release_abandoned(self, done: asyncio.Future[tuple[LockInfo | None, Any]]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        taken = done.result()[0]
        if taken is not None:
            with contextlib.suppress(BackendError):
                self._remove_if_id(taken)

    async def renew(self, lock: LockInfo, *, lease_seconds: float) -> LockInfo:
        _check_durations(lease_seconds, 0)
        async with self._turn(lock.workspace):
            return await asyncio.to_thread(self._renew, lock, lease_seconds)

    def _renew(self, lock: LockInfo, lease_seconds: float) -> LockInfo:
        scope = LockScope(lock.workspace, lock.resource)
        path = self._lock_path(scope)
        with os_errors_as_backend_errors("renew the lock", path), self._mutex(lock.workspace):
            current = _read_lock(path)
            if current is None or current.id != lock.id:
                raise _lost_error(lock, current)
            if current.expires < self.clock.now():
                raise _lapsed_error(current, self._blocker(scope))
            renewed = replace(current, expires=self.clock.now() + timedelta(seconds=lease_seconds))
            _write_lock(path, renewed)
        return renewed

    async def release(self, lock: LockInfo) -> None:
        # In a thread, like acquire; shielded by the caller (hold_lock), so it always finishes.
        async with self._turn(lock.workspace):
            await asyncio.to_thread(self._remove_if_id, lock)

    async def list_locks(self, workspace: str | None = None) -> list[LockInfo]:
        workspaces = [validate_workspace(workspace)] if workspace else self._workspaces()
        found: list[LockInfo] = []
        with os_errors_as_backend_errors("list the locks in", self.root / "."):
            for name in workspaces:
                locks = self.root / name / "locks"
                found.extend(info for info in [_read_lock(locks / "workspace.json")] if info)
                found.extend(_read_all(locks / "resources"))
        return sorted(found, key=lambda info: (info.created, info.id))

    async def force_unlock(self, lock_id: str) -> LockInfo:
        if isinstance(lock_id, str) and _LOCK_ID.fullmatch(lock_id):
            for info in await self.list_locks():
                if info.id == lock_id and self._remove_if_id(info):
                    log.warning("force-unlocked lock_id=%s held by %s", lock_id, info.who)
                    return info
        raise LockNotFound(
            f"No lock with id {lock_id!r} is held under {self.root}.",
            next_step="Run `ccstate lock list` to see the current lock ids.",
            lock_id=lock_id,
        )

    # ------------------------------------------------------------------ helpers

    def _workspaces(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir()
            and not entry.name.startswith(".")
            and os.path.isdir(os.path.join(entry.path, "locks"))
        )

    def _remove_if_id(self, info: LockInfo) -> bool:
        path = self._lock_path(LockScope(info.workspace, info.resource))
        with os_errors_as_backend_errors("release the lock", path), self._mutex(info.workspace):
            current = _read_lock(path)
            if current is None or current.id != info.id:
                return False
            path.unlink(missing_ok=True)
            return True

    def _next_fence(self, workspace: str) -> int:
        """One more than every token handed out in this workspace (caller holds the mutex).
        The lock files' own tokens count too, so a deleted counter file never goes back."""
        locks = self._locks_dir(workspace)
        counter = locks / "fence"
        try:
            last = int(counter.read_text().strip() or 0)
        except FileNotFoundError:
            last = 0
        except ValueError:
            log.warning("ignoring unreadable fencing counter %s", counter)
            last = 0
        held = [_read_lock(locks / "workspace.json"), *_read_all(locks / "resources")]
        token = max([last, *(info.fence for info in held if info is not None)]) + 1
        replace_atomically(counter, f"{token}\n".encode())
        return token

    def _new_lock(self, scope: LockScope, *, operation: str, who: str, lease: float) -> LockInfo:
        now = self.clock.now()
        return LockInfo(
            id=secrets.token_hex(8),
            workspace=scope.workspace,
            resource=scope.resource,
            who=who,
            host=socket.gethostname(),
            pid=os.getpid(),
            operation=operation,
            created=now,
            expires=now + timedelta(seconds=lease),
            version=ccstate_version(),
        )


# ---------------------------------------------------------------------- lock files


def _write_lock(path: Path, info: LockInfo) -> None:
    body = {"format": _FORMAT, **info.to_dict()}
    replace_atomically(path, json.dumps(body, indent=2, sort_keys=True).encode())


def _read_lock(path: Path) -> LockInfo | None:
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return _lock_from_dict(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        # Lock files are replaced atomically, so this is outside tampering; a lease nobody can
        # read protects nothing, and refusing forever would block the team.
        log.warning("ignoring unreadable lock file %s: %s", path, exc)
        return None


def _read_all(directory: Path) -> list[LockInfo]:
    if not directory.is_dir():
        return []
    found = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            info = _read_lock(Path(entry.path))
            if info is not None:
                found.append(info)
    return found


def _lock_from_dict(data: dict[str, Any]) -> LockInfo:
    return LockInfo(
        id=str(data["id"]),
        workspace=str(data["workspace"]),
        resource=None if data["resource"] is None else str(data["resource"]),
        who=str(data["who"]),
        host=str(data["host"]),
        pid=int(data["pid"]),
        operation=str(data["operation"]),
        created=datetime.fromisoformat(data["created"]),
        expires=datetime.fromisoformat(data["expires"]),
        version=str(data.get("version", "")),
        fence=int(data.get("fence", 0)),
    )


# ---------------------------------------------------------------------- errors


def _lapsed_error(lock: LockInfo, blocker: LockInfo | None) -> LockLost:
    """A lapsed lease is never renewed, as on DynamoDB: another holder may have taken the
    scope (a workspace lock over a resource lock) while it was free."""
    scope = LockScope(lock.workspace, lock.resource).describe()
    taken = (
        f"; {blocker.who} (lock id {blocker.id}) holds it now"
        if blocker is not None and blocker.id != lock.id
        else ""
    )
    return LockLost(
        f"Lost the lock {lock.id} on {scope}: its lease ran out at "
        f"{lock.expires.isoformat()}{taken}.",
        next_step="Check `ccstate state history` for what was applied, then re-run the operation.",
        lock_id=lock.id,
    )


def _check_durations(lease_seconds: float, timeout: float) -> None:
    if not lease_seconds > 0 or not timeout >= 0:
        raise InvalidInput(
            f"Invalid lock durations: lease {lease_seconds!r}s, timeout {timeout!r}s.",
            next_step="Use a lease greater than 0 and a timeout of 0 or more seconds.",
        )


def describe_holder(info: LockInfo) -> str:
    scope = LockScope(info.workspace, info.resource).describe()
    return (
        f"{scope} is held by {info.who} on host {info.host} (pid {info.pid}) for "
        f"'{info.operation}' since {info.created.isoformat()}, lease expires "
        f"{info.expires.isoformat()} (lock id {info.id})"
    )


def _timeout_error(scope: LockScope, holder: LockInfo, timeout: float) -> LockTimeout:
    return LockTimeout(
        f"Timed out after {timeout:g}s waiting for the lock on {scope.describe()}: "
        f"{describe_holder(holder)}.",
        next_step="Wait for that operation to finish and retry; if its holder is gone, run "
        f"`ccstate lock force-unlock {holder.id}`.",
        holder=holder.to_dict(),
    )


def _lost_error(lock: LockInfo, current: LockInfo | None) -> LockLost:
    scope = LockScope(lock.workspace, lock.resource).describe()
    if current is None:
        why = "it was force-unlocked or released"
    else:
        why = f"its lease expired and {current.who} (lock id {current.id}) took it"
    return LockLost(
        f"Lost the lock {lock.id} on {scope}: {why}.",
        next_step="Check `ccstate state history` for what was applied, then re-run the operation.",
        lock_id=lock.id,
    )
