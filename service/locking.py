"""Hold a lease lock for the duration of a block of work, with a heartbeat, whatever the backend.

    async with hold_lock(locks, LockScope("default", "my-bucket"), operation="update",
                         who=principal) as held:
        ...                      # the work
        held.ensure_held()       # optional: check before an irreversible step (e.g. a commit)

- The lease is renewed every ``lease_seconds / 3`` by a background task, so work may run longer
  than one lease. A failed renewal for another reason than LockLost (a network blip) is logged
  and retried at the next beat; the lease covers two missed beats.
- The lock is ALWAYS released on exit: normal end, exception, or cancellation of the task. The
  release is shielded from a second cancellation. A release that fails is logged, not raised:
  the work is over and the lease expires by itself within ``lease_seconds``.
- If a renewal finds the lock is no longer ours (force-unlocked, or expired and taken by
  someone else), nothing is cancelled: the work runs to the end of the block, ``held.lost`` is
  set, ``held.ensure_held()`` raises, and the block raises ``LockLost`` on exit. When the block
  itself raised, that exception propagates instead, with a note saying the lock was lost.
  With ``raise_if_lost=False`` a block that ended normally only logs the loss: for work that has
  already been done and recorded (a Cloud Control change and its commit), where an error would
  tell the caller that a change which happened did not.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from ccstate.service.errors import LockLost
from ccstate.service.ports import LockInfo, LockManager, LockScope

log = logging.getLogger(__name__)
WAIT_NOTICE_SECONDS = 0.5


@dataclass
class HeldLock:
    """The lock a ``hold_lock`` block holds; ``info`` follows each renewal."""

    info: LockInfo
    lost: LockLost | None = None

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def fence(self) -> int:
        """The lease's fencing token; commits made under this lock carry it."""
        return self.info.fence

    def ensure_held(self) -> None:
        """Raise ``LockLost`` if a heartbeat found the lock taken away."""
        if self.lost is not None:
            raise self.lost

    def ensure_live(self, now: datetime) -> None:
        """Raise ``LockLost`` unless the lock is still ours and its lease runs past ``now``:
        the check a commit makes just before its put, so a holder stalled past its lease never
        commits (the fencing token catches what slips between this check and the put)."""
        self.ensure_held()
        if now >= self.info.expires:
            scope = LockScope(self.info.workspace, self.info.resource).describe()
            self.lost = LockLost(
                f"The lease of lock {self.id} on {scope} ran out at "
                f"{self.info.expires.isoformat()} before the commit: someone else may hold it "
                "now. Nothing was written.",
                next_step="Check the resource's history (${history}), then re-run the operation.",
                lock_id=self.id,
            )
            raise self.lost


async def _acquire(
    acquiring: Awaitable[LockInfo], on_wait: Callable[[], None] | None, notice_after: float
) -> LockInfo:
    if on_wait is None:
        return await acquiring
    task = asyncio.ensure_future(acquiring)
    try:
        done, _ = await asyncio.wait({task}, timeout=notice_after)
        if not done:
            on_wait()
        return await task
    except BaseException:
        task.cancel()  # cancelled while waiting: stop trying for the lock too
        raise


@asynccontextmanager
async def hold_lock(
    locks: LockManager,
    scope: LockScope,
    *,
    operation: str,
    who: str,
    lease_seconds: float = 60,
    timeout: float = 30,
    raise_if_lost: bool = True,
    on_wait: Callable[[], None] | None = None,
    notice_after: float = WAIT_NOTICE_SECONDS,
) -> AsyncIterator[HeldLock]:
    """``on_wait`` is called once when the lock is not had within ``notice_after`` seconds (the
    CLI then prints "Acquiring state lock...", as Terraform does)."""
    info = await _acquire(
        locks.acquire(
            scope, operation=operation, who=who, lease_seconds=lease_seconds, timeout=timeout
        ),
        on_wait,
        notice_after,
    )
    held = HeldLock(info)
    heartbeat = asyncio.create_task(
        _heartbeat(locks, held, lease_seconds), name=f"ccstate-lock-heartbeat-{info.id}"
    )
    try:
        yield held
    except BaseException as exc:
        if held.lost is not None:
            exc.add_note(f"While this ran, the lock was lost: {held.lost}")
        raise
    finally:
        await _stop_and_release(locks, held, heartbeat)
    if raise_if_lost:
        held.ensure_held()
    elif held.lost is not None:
        log.warning(
            "%s; the work itself completed: check the resource for concurrent changes.", held.lost
        )


async def _heartbeat(locks: LockManager, held: HeldLock, lease_seconds: float) -> None:
    interval = lease_seconds / 3
    while True:
        await asyncio.sleep(interval)
        try:
            held.info = await locks.renew(held.info, lease_seconds=lease_seconds)
        except LockLost as exc:
            log.error("%s", exc)
            held.lost = exc
            return
        except Exception as exc:
            log.warning("could not renew lock_id=%s, retrying in %.1fs: %s", held.id, interval, exc)


async def _stop_and_release(
    locks: LockManager, held: HeldLock, heartbeat: asyncio.Task[None]
) -> None:
    heartbeat.cancel()
    # wait() never raises the heartbeat's own CancelledError, only a cancellation of this task;
    # that one must not skip the release (it is raised again once the release is on its way).
    cancelled = False
    try:
        await asyncio.wait([heartbeat])
    except asyncio.CancelledError:
        cancelled = True
    try:
        await asyncio.shield(locks.release(held.info))
    except asyncio.CancelledError:
        raise  # the shielded release goes on in the background
    except Exception as exc:
        log.warning(
            "could not release lock %s (it expires by itself at %s): %s",
            held.id,
            held.info.expires.isoformat(),
            exc,
        )
    if cancelled:
        raise asyncio.CancelledError
