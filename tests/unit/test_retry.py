"""The one retry policy (ccstate.service.retry): what is retried, how often, what comes back."""

from __future__ import annotations

import pytest
from ccstate.service import retry
from tenacity import wait_none


class Throttled(Exception):
    pass


class Refused(Exception):
    pass


def flaky(failures: list[BaseException], answer: str = "ok"):
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return answer

    return call, calls


async def no_wait_call(fn, **kwargs):
    async for attempt in retry.retry_transient(
        lambda exc: isinstance(exc, Throttled), wait=wait_none(), **kwargs
    ):
        with attempt:
            return await fn()
    raise AssertionError


async def test_transient_errors_are_retried_until_the_call_succeeds() -> None:
    call, calls = flaky([Throttled(), Throttled()])
    assert await no_wait_call(call) == "ok"
    assert len(calls) == 3


async def test_other_errors_propagate_at_once() -> None:
    call, calls = flaky([Refused()])
    with pytest.raises(Refused):
        await no_wait_call(call)
    assert len(calls) == 1


async def test_retries_are_bounded_and_the_last_error_propagates() -> None:
    call, calls = flaky([Throttled() for _ in range(10)])
    with pytest.raises(Throttled):
        await no_wait_call(call, attempts=4)
    assert len(calls) == 4


async def test_poll_returns_the_first_answer_that_is_done() -> None:
    answers = iter([1, 2, 3, 4])

    async def ask() -> int:
        return next(answers)

    assert await retry.poll(ask, done=lambda n: n >= 3, wait=wait_none(), timeout=60) == 3


async def test_poll_gives_the_last_answer_when_attempts_run_out() -> None:
    answers = iter([1, 2, 3, 4])

    async def ask() -> int:
        return next(answers)

    assert await retry.poll(ask, done=lambda n: False, wait=wait_none(), attempts=2) == 2


async def test_poll_with_no_time_asks_exactly_once() -> None:
    call, calls = flaky([], answer="held")
    assert await retry.poll(call, done=lambda a: False, wait=wait_none(), timeout=0) == "held"
    assert len(calls) == 1


def test_waits_grow_within_their_bounds() -> None:
    class State:
        def __init__(self, n: int) -> None:
            self.attempt_number = n

    growing = retry.growing(0.2, 5.0, factor=1.6)
    assert [round(growing(State(n)), 3) for n in (1, 2, 3)] == [0.2, 0.32, 0.512]
    assert growing(State(30)) == 5.0
    for n in range(1, 20):
        step = min(2.0, 0.05 * 2 ** (n - 1))
        assert 0 <= retry.full_jitter(0.05, 2.0)(State(n)) <= step
        assert step / 2 <= retry.equal_jitter(0.05, 2.0)(State(n)) <= 3 * step / 2
