"""Ctrl-C stops an asyncio command even when the kernel hands SIGINT to another thread.

Python runs signal handlers in the main thread only; a signal delivered to another thread used
to leave the main thread asleep in the selector (``drift --watch`` for an hour). Real signals,
real threads: another thread sends SIGINT to itself with pthread_kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from ccstate.wakeup import woken_by_signals

WATCHDOG_SECONDS = 30.0  # only a hang waits this long; it then fails the test


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[threading.Event]:
    """Only a hang lasts ``seconds``: the event is then set and the main thread interrupted,
    so the test fails instead of hanging."""
    assert threading.current_thread() is threading.main_thread()
    main_thread = threading.get_ident()
    hung = threading.Event()

    def unstick() -> None:
        hung.set()
        signal.pthread_kill(main_thread, signal.SIGINT)

    timer = threading.Timer(seconds, unstick)
    timer.start()
    try:
        yield hung
    finally:
        timer.cancel()


async def wait_while_a_thread_is_interrupted() -> None:
    """The thread takes the signal once the loop sleeps, and never touches the loop."""
    done = threading.Event()

    def interrupt_this_thread() -> None:
        # Ordering only: sent sooner, the signal finds the main thread running and is handled
        # either way, so the test cannot fail for it (it would only test less).
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        done.wait()

    worker = threading.Thread(target=interrupt_this_thread, daemon=True)
    worker.start()
    try:
        await asyncio.sleep(3600)  # nothing else wakes the loop
    finally:
        done.set()


def test_sigint_taken_by_another_thread_stops_the_command() -> None:
    with watchdog(WATCHDOG_SECONDS) as hung, pytest.raises(KeyboardInterrupt):
        asyncio.run(woken_by_signals(wait_while_a_thread_is_interrupted()))
    assert not hung.is_set(), "the loop slept on after the other thread took SIGINT"


def test_the_wakeup_fd_is_given_back() -> None:
    async def main() -> int:
        return 7

    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    assert asyncio.run(woken_by_signals(main())) == 7
    assert signal.set_wakeup_fd(before) == before


def test_sigint_taken_by_another_thread_still_stops_serve_after_its_sigterm_receiver_closed() -> (
    None
):
    """``serve`` (app.py ``_serve``) listens for SIGTERM inside ``signals_wake_the_loop``, then
    stops listening and runs ``abort()``. With anyio's signal receiver (the loop's
    ``add_signal_handler``) the wakeup fd was set to -1 when its last handler went, and from
    then on the loop was no longer woken by a signal another thread took."""
    import anyio

    from ccstate.app import _until_terminated

    async def serve_like() -> None:  # as _serve: SIGTERM watched, then cancelled, then abort()
        async with anyio.create_task_group() as tasks:
            default = signal.getsignal(signal.SIGTERM)
            tasks.start_soon(_until_terminated, tasks.cancel_scope)
            while signal.getsignal(signal.SIGTERM) is default:  # until it listens
                await asyncio.sleep(0)
            tasks.cancel_scope.cancel()
        await wait_while_a_thread_is_interrupted()  # e.g. abort() waiting for its tasks

    with watchdog(WATCHDOG_SECONDS) as hung, pytest.raises(KeyboardInterrupt):
        asyncio.run(woken_by_signals(serve_like()))
    assert not hung.is_set(), "the loop slept on after the SIGTERM receiver closed"
