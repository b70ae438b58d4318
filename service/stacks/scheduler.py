"""Run one step per node of a DAG: each as soon as what it depends on is done, at most
``limit`` at once; after the first failure nothing new starts, the running ones finish."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field


@dataclass
class ScheduleResult:
    done: list[str] = field(default_factory=list)  # in completion order
    failed: dict[str, BaseException] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


async def run_dag(
    deps: Mapping[str, frozenset[str] | set[str]],
    step: Callable[[str], Awaitable[None]],
    *,
    limit: int = 10,
) -> ScheduleResult:
    result = ScheduleResult()
    waiting = {name: set(d) for name, d in deps.items()}
    running: dict[asyncio.Task[None], str] = {}
    gate = asyncio.Semaphore(limit)

    async def guarded(name: str) -> None:
        async with gate:
            await step(name)

    try:
        while waiting or running:
            if not result.failed:
                for name in [n for n, d in waiting.items() if not d]:
                    del waiting[name]
                    running[asyncio.create_task(guarded(name))] = name
            if not running:
                break
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                name = running.pop(task)
                if task.exception() is not None:
                    result.failed[name] = task.exception()  # type: ignore[assignment]
                    continue
                result.done.append(name)
                for d in waiting.values():
                    d.discard(name)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
    return result


def reversed_deps(deps: Mapping[str, frozenset[str] | set[str]]) -> dict[str, set[str]]:
    """Who must go before whom when deleting: a resource after everything depending on it."""
    out: dict[str, set[str]] = {name: set() for name in deps}
    for name, needs in deps.items():
        for need in needs:
            out[need].add(name)
    return out
