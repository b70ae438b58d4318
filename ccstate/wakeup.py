"""Signals wake the event loop, whichever thread the kernel hands them to.

Python runs a signal's handler (``asyncio.run``'s Ctrl-C handler, which cancels the main task)
only in the main thread, between two bytecodes. The kernel may deliver a signal sent to the
process to any of its threads; when it picks one of the executor's workers, the main thread
stays asleep in the selector until something else wakes it: for ``ccstate drift --watch
--interval 1h`` that was the next check, an hour later. A loaded machine made it happen in the
test suite. asyncio's own ``add_signal_handler`` avoids this with a wakeup fd; ``asyncio.run``
does not set one. This module sets one, readable by the running loop, so the byte the signal
writes wakes the main thread and the handler runs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


@contextlib.asynccontextmanager
async def signals_wake_the_loop() -> AsyncIterator[None]:
    """While inside, a signal (SIGINT, SIGTERM, ...) wakes the running loop. Outside the main
    thread, where Python allows no wakeup fd, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    loop.add_reader(reader.fileno(), _drain, reader)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        loop.remove_reader(reader.fileno())
        reader.close()
        writer.close()


class Terminated(Exception):
    """The command was stopped by SIGTERM (a service manager, ``kill``), as Ctrl-C stops it."""


async def woken_by_signals(main: Coroutine[Any, Any, T]) -> T:
    """``main``, run with ``signals_wake_the_loop``: what ``asyncio.run`` is given. SIGTERM
    cancels it as Ctrl-C does (locks released, changes in flight left to the reconciler) and
    then raises ``Terminated``."""
    terminated = threading.Event()
    async with signals_wake_the_loop(), _sigterm_cancels(asyncio.current_task(), terminated):
        try:
            return await main
        except asyncio.CancelledError:
            if terminated.is_set():
                raise Terminated from None
            raise


@contextlib.asynccontextmanager
async def _sigterm_cancels(
    task: asyncio.Task[Any] | None, terminated: threading.Event
) -> AsyncIterator[None]:
    if task is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def cancel() -> None:
        if not terminated.is_set():
            terminated.set()
            task.cancel()

    with on_sigterm(cancel):
        yield


@contextlib.contextmanager
def on_sigterm(callback: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGTERM runs ``callback`` on the running loop. A plain ``signal.signal``
    handler, not the loop's ``add_signal_handler``: removing the loop's last handler sets the
    wakeup fd to -1, which would undo ``signals_wake_the_loop``. Main thread only."""
    loop = asyncio.get_running_loop()

    def handler(signum: int, frame: Any) -> None:
        loop.call_soon_threadsafe(callback)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _drain(reader: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while reader.recv(4096):
            pass
