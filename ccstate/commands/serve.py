"""``ccstate serve``: run the MCP server (stdio by default, or streamable HTTP)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from ccstate.context import CliContext

EXIT_INTERRUPTED = 130


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from ccstate.mcp_server.arguments import add_serve_arguments

    parser = subparsers.add_parser(
        "serve",
        help="Run the MCP server for AI assistants (stdio by default).",
        description="Run the ccstate MCP server. With --sandbox it runs fully offline against "
        "the built-in AWS sandbox. An MCP client starts it as: ccstate serve (stdio), with "
        "AWS_REGION and CCSTATE_BACKEND in its environment.",
        parents=[common],
    )
    add_serve_arguments(parser)
    parser.set_defaults(handler=run_serve)


def run_serve(ctx: CliContext) -> int:
    """A plain function: the server runs its own event loop."""
    from ccstate.mcp_server.arguments import config_from_args
    from ccstate.mcp_server.server import serve

    config = config_from_args(ctx.args)
    if getattr(config, "transport", "stdio") != "stdio" or not sys.stdin.isatty():
        return serve(config)
    with _interruptible_terminal_stdin() as interrupted:
        code = serve(config)
    if interrupted.is_set():
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


@contextlib.contextmanager
def _interruptible_terminal_stdin() -> Iterator[threading.Event]:
    """The stdio transport reads stdin in a worker thread that nothing can interrupt, so at a
    terminal Ctrl-C used to wait for Enter. Here the terminal is copied into a pipe that the
    server reads instead: Ctrl-C closes the pipe, the server sees end of input and shuts down as
    when a client disconnects (releasing what it holds). A second Ctrl-C stops at once."""
    terminal = os.dup(0)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)
    os.close(read_end)
    interrupted = threading.Event()
    closing = threading.Lock()
    open_end = [write_end]

    def close_pipe() -> None:
        with closing:
            if open_end:
                os.close(open_end.pop())

    def copy() -> None:
        while True:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:
                chunk = b""
            with closing:
                if not chunk or not open_end:
                    break
                os.write(open_end[0], chunk)
        close_pipe()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        print("Stopping (Ctrl-C again to stop at once)...", file=sys.stderr, flush=True)
        close_pipe()

    threading.Thread(target=copy, name="ccstate-terminal-stdin", daemon=True).start()
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)
        close_pipe()
