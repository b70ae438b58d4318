"""Prometheus metrics of one server process (``/metrics`` on the HTTP server).

Each server has its own registry (tests run several in one process). What is counted:

- ``ccstate_tool_requests_total{tool,outcome}``: every tool call; outcome ``ok`` or the error
  code of the answer (``forbidden``, ``state_conflict``, ``lock_timeout``, ...);
- ``ccstate_tool_seconds{tool}``: how long each call took;
- ``ccstate_commits_total`` and ``ccstate_state_conflicts_total``: commits this process wrote
  and the ones refused as conflicts;
- ``ccstate_lock_wait_seconds`` and ``ccstate_lock_timeouts_total``: waiting for resource and
  workspace locks;
- ``ccstate_token_refusals_total{reason}`` and ``ccstate_http_refusals_total{status,reason}``:
  bearer tokens refused and HTTP requests refused (401, 403, the session of another principal);
- ``ccstate_drift_found_total{status}``: resources a drift check found MODIFIED or DELETED.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.errors import LockTimeout, StateConflict
from ccstate.service.ports import LockInfo, LockManager, LockScope
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.tool_requests = Counter(
            "ccstate_tool_requests", "Tool calls", ["tool", "outcome"], registry=r
        )
        self.tool_seconds = Histogram(
            "ccstate_tool_seconds", "Tool call duration", ["tool"], buckets=_LATENCY, registry=r
        )
        self.commits = Counter("ccstate_commits", "State commits written", registry=r)
        self.conflicts = Counter(
            "ccstate_state_conflicts", "Commits refused as conflicts", registry=r
        )
        self.lock_wait = Histogram(
            "ccstate_lock_wait_seconds", "Time to acquire a lock", buckets=_LATENCY, registry=r
        )
        self.lock_timeouts = Counter("ccstate_lock_timeouts", "Lock waits timed out", registry=r)
        self.token_refusals = Counter(
            "ccstate_token_refusals", "Bearer tokens refused", ["reason"], registry=r
        )
        self.http_refusals = Counter(
            "ccstate_http_refusals", "HTTP requests refused", ["status", "reason"], registry=r
        )
        self.drift_found = Counter(
            "ccstate_drift_found", "Drifted resources found", ["status"], registry=r
        )

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def tool_call(self, tool: str, outcome: str, seconds: float, result: Any) -> None:
        self.tool_requests.labels(tool=tool, outcome=outcome).inc()
        self.tool_seconds.labels(tool=tool).observe(seconds)
        if tool == "detect_drift" and outcome == "ok" and isinstance(result, dict):
            counts = result.get("counts") or {}
            for status in ("MODIFIED", "DELETED"):
                if counts.get(status):
                    self.drift_found.labels(status=status).inc(counts[status])


class TimedLocks:
    """A ``LockManager`` that measures how long acquiring takes; everything else passes on."""

    def __init__(self, inner: LockManager, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def acquire(self, scope: LockScope, **options: Any) -> LockInfo:
        started = time.perf_counter()
        try:
            return await self._inner.acquire(scope, **options)
        except LockTimeout:
            self._metrics.lock_timeouts.inc()
            raise
        finally:
            self._metrics.lock_wait.observe(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def count_commits(store: Any, metrics: Metrics) -> None:
    """Count the commits ``store`` writes (and the conflicts it refuses) in ``metrics``."""
    for name in ("commit", "restore", "import_document"):
        original = getattr(store, name, None)
        if original is not None:
            setattr(store, name, _counted(original, metrics))


def _counted(method: Any, metrics: Metrics) -> Any:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await method(*args, **kwargs)
        except StateConflict:
            metrics.conflicts.inc()
            raise
        metrics.commits.inc()
        return result

    return counted
