"""Drift checks as users run them: one check (scan, record, optionally fix), and the watch loop
that repeats it every interval until stopped.

``run_drift_check`` is what ``ccstate drift``, the ``detect_drift`` MCP tool and the monitor
share: scan with bounded concurrency, record the whole scan as ONE commit (a ``drift_check``
change per resource), then, when asked, fix each MODIFIED resource through the token workflow
(``ccstate.service.drift.remediate``), each fix its own ``remediate`` commit.

``run_drift_monitor`` runs that check every ``interval`` seconds, so every detection is in the
history. One failed run (the backend unreachable, credentials expired) is logged and reported
to ``on_run``; the loop goes on, because a monitor that dies quietly is worse than none.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.authz.principal import Principal
from ccstate.service.drift.detect import DriftDetector, DriftReport, ProgressCallback
from ccstate.service.drift.remediate import DriftRemediator, FixOutcome
from ccstate.service.errors import CcstateError
from ccstate.service.state.model import Commit, CommitMeta

log = logging.getLogger(__name__)


@dataclass
class DriftRun:
    """One drift check: the scan, the commit that recorded it, and the fixes made after it."""

    report: DriftReport
    commit: Commit | None = None
    fixes: list[FixOutcome] = field(default_factory=list)
    recorded: bool = True

    @property
    def drift_found(self) -> bool:
        return bool(self.report.drifted)

    @property
    def failed(self) -> bool:
        return self.report.counts["FAILED"] > 0

    @property
    def remaining_drift(self) -> list[str]:
        """Drifted resources not fixed by this run."""
        fixed = {f.identifier for f in self.fixes if f.fixed}
        return [r.identifier for r in self.report.drifted if r.identifier not in fixed]

    def to_dict(self) -> dict[str, Any]:
        report = self.report.to_dict()
        return {
            **report,
            "drift_detected": self.drift_found,
            "drifted": [r.identifier for r in self.report.drifted],
            "recorded_serial": self.commit.serial if self.commit is not None else None,
            "recorded": self.recorded and self.commit is not None,
            "fixes": [f.to_dict() for f in self.fixes],
            "remaining_drift": self.remaining_drift,
        }


async def run_drift_check(
    detector: DriftDetector,
    meta: CommitMeta,
    *,
    identifiers: Iterable[str] | None = None,
    remediator: DriftRemediator | None = None,
    auto_fix: bool = False,
    record: bool = True,
    on_progress: ProgressCallback | None = None,
    user_intent: str = "",
    principal: Principal | None = None,
) -> DriftRun:
    """Scan ``identifiers`` (default: all), record the scan, and fix what drifted if asked.

    ``record=False`` (a read-only server) only reports. ``auto_fix`` needs a ``remediator``
    and the ``principal`` the fixes are made for.
    """
    if auto_fix and (remediator is None or principal is None):
        raise ValueError("auto_fix needs a remediator and a principal")
    report = await detector.scan(identifiers, on_progress=on_progress)
    if report.stopped_reason:
        log.warning("drift scan %s", report.stopped_reason)
    run = DriftRun(report, recorded=record)
    if record:
        run.commit = await detector.record(report, meta)
    if auto_fix and remediator is not None and principal is not None:
        run.fixes = await remediator.remediate_all(
            principal, report.drifted, user_intent=user_intent
        )
    return run


RunCallback = Callable[["DriftRun | None", "CcstateError | None"], Awaitable[None] | None]


async def run_drift_monitor(
    detector: DriftDetector,
    *,
    interval: float,
    meta: CommitMeta | Callable[[], Awaitable[CommitMeta]],
    identifiers: Iterable[str] | None = None,
    remediator: DriftRemediator | None = None,
    auto_fix: bool = False,
    record: bool = True,
    on_run: RunCallback | None = None,
    stop: asyncio.Event | None = None,
    max_runs: int | None = None,
    principal: Principal | Callable[[], Awaitable[Principal]] | None = None,
) -> int:
    """Check, record, wait ``interval`` seconds, repeat; returns the number of runs made.

    Ends when ``stop`` is set (promptly: the wait is interrupted), after ``max_runs`` runs, or
    when the task is cancelled. ``on_run(run, None)`` after each check, ``on_run(None, error)``
    when one could not be made. ``meta`` may be a coroutine function, called once per run, and
    so may ``principal`` (who the fixes are made for).
    ``record=False`` (a read-only server) checks and reports without writing the state.
    """
    if interval <= 0:
        raise ValueError("the drift monitor interval must be more than 0 seconds")
    stop = stop or asyncio.Event()
    wanted = list(identifiers) if identifiers is not None else None
    runs = 0
    while not stop.is_set():
        run, error = await _one_run(detector, meta, wanted, remediator, auto_fix, record, principal)
        runs += 1
        if on_run is not None:
            answer = on_run(run, error)
            if inspect.isawaitable(answer):
                await answer
        if max_runs is not None and runs >= max_runs:
            break
        with contextlib.suppress(TimeoutError):  # the interval passed: run again
            await asyncio.wait_for(stop.wait(), timeout=interval)
    return runs


async def _one_run(
    detector: DriftDetector,
    meta: CommitMeta | Callable[[], Awaitable[CommitMeta]],
    identifiers: list[str] | None,
    remediator: DriftRemediator | None,
    auto_fix: bool,
    record: bool,
    principal: Principal | Callable[[], Awaitable[Principal]] | None,
) -> tuple[DriftRun | None, CcstateError | None]:
    try:
        run_meta = meta if isinstance(meta, CommitMeta) else await meta()
        who = principal() if callable(principal) else principal
        run_principal = await who if inspect.isawaitable(who) else who
        run = await run_drift_check(
            detector,
            run_meta,
            identifiers=identifiers,
            remediator=remediator,
            auto_fix=auto_fix,
            record=record,
            principal=run_principal,
        )
    except CcstateError as exc:
        log.error("drift check failed: %s", exc)
        return None, exc
    except Exception as exc:  # a monitor must outlive one bad run; the next one may work
        log.exception("drift check failed unexpectedly")
        return None, CcstateError(f"The drift check failed unexpectedly: {type(exc).__name__}")
    _log_run(run)
    return run, None


def _log_run(run: DriftRun) -> None:
    counts = run.report.counts
    serial = run.commit.serial if run.commit is not None else None
    message = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    if run.drift_found:
        log.warning("drift detected: %s (recorded at serial %s)", message, serial)
    else:
        log.info("drift check: %s (recorded at serial %s)", message or "nothing to check", serial)
