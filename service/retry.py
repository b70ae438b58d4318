"""The one retry and wait policy, on tenacity: every loop that tries again goes through here.

Two shapes:

- ``retry_transient``: call again after an error that says "try later" (throttling, 5xx, a
  dropped connection: the caller's predicate decides), a bounded number of times, with full
  jitter. Any other error, and the last one, propagate unchanged.
- ``poll``: ask again until the answer is the one wanted or a deadline passes (a lock that is
  held, a request still in progress); returns the last answer, so the caller words the timeout.
  Waits grow exponentially, are jittered, and never overshoot the deadline: the last attempt
  happens at the deadline.

Pure asyncio + tenacity, so the domain and the adapters share it (the AWS predicate lives in
``ccstate.backends.aws``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_not_result,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

T = TypeVar("T")
Wait = wait_base | Callable[[RetryCallState], float]

TRANSIENT_ATTEMPTS = 5
TRANSIENT_FIRST = 0.1  # seconds; the ceiling of the first wait
TRANSIENT_MAX = 5.0


def full_jitter(first: float, maximum: float, *, factor: float = 2.0) -> wait_base:
    """A random wait in [0, first * factor**n], capped at ``maximum``: contenders that collided
    once do not collide again in lockstep."""
    return wait_random_exponential(multiplier=first, max=maximum, exp_base=factor)


def equal_jitter(first: float, maximum: float, *, factor: float = 2.0) -> wait_base:
    """Half the exponential step fixed, half random ([d/2, 3d/2]): never a near-zero wait, for
    contenders whose every attempt costs several requests."""
    fixed = wait_exponential(multiplier=first / 2, max=maximum / 2, exp_base=factor)
    return fixed + full_jitter(first, maximum, factor=factor)


def growing(first: float, maximum: float, *, factor: float = 2.0) -> wait_base:
    """first, first*factor, ... up to ``maximum``, no jitter (polling one's own request)."""
    return wait_exponential(multiplier=first, max=maximum, exp_base=factor, min=first)


def retry_transient(
    is_transient: Callable[[BaseException], bool],
    *,
    attempts: int = TRANSIENT_ATTEMPTS,
    wait: Wait | None = None,
    on_retry: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    """``async for attempt in retry_transient(...): with attempt: ...``."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait or full_jitter(TRANSIENT_FIRST, TRANSIENT_MAX),
        reraise=True,
        before_sleep=on_retry,
    )


async def call_transient(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    is_transient: Callable[[BaseException], bool],
    attempts: int = TRANSIENT_ATTEMPTS,
    on_retry: Callable[[RetryCallState], None] | None = None,
    **kwargs: Any,
) -> T:
    """``await fn(*args, **kwargs)``, retried under ``retry_transient``."""
    async for attempt in retry_transient(is_transient, attempts=attempts, on_retry=on_retry):
        with attempt:
            return await fn(*args, **kwargs)
    raise AssertionError("unreachable: tenacity reraises the last error")


async def poll(
    attempt: Callable[[], Awaitable[T]],
    *,
    done: Callable[[T], bool],
    wait: Wait,
    timeout: float | None = None,
    attempts: int | None = None,
) -> T:
    """Call ``attempt`` until ``done(answer)``, or until ``timeout`` seconds have passed or
    ``attempts`` calls were made (at least one call); the last answer either way. Errors from
    ``attempt`` propagate at once."""
    stop = stop_never
    if timeout is not None:
        timeout = max(timeout, 0.0)
        stop = stop | stop_after_delay(timeout)
        wait = _within(wait, timeout)
    if attempts is not None:
        stop = stop | stop_after_attempt(attempts)
    retrying = AsyncRetrying(
        retry=retry_if_not_result(done),
        stop=stop,
        wait=wait,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )

    async def once() -> T:  # tenacity awaits only what a coroutine function returns
        return await attempt()

    return await retrying(once)  # type: ignore[no-any-return]


def _within(wait: Wait, timeout: float) -> Callable[[RetryCallState], float]:
    """``wait``, cut so that the next attempt happens no later than the deadline."""

    def clipped(state: RetryCallState) -> float:
        remaining = timeout - (state.seconds_since_start or 0.0)
        return max(0.0, min(wait(state), remaining))

    return clipped
