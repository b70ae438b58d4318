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
from typing import Any

from ccstate.argtypes import duration
from ccstate.context import CliContext

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
EXIT_INTERRUPTED = 130


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    from ccstate.app import serve

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


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="start the offline AWS sandbox in this process and use it (no AWS account needed)",
    )
    parser.add_argument(
        "--sandbox-endpoint",
        metavar="URL",
        help="use an already running sandbox (or LocalStack) at URL, like AWS_ENDPOINT_URL",
    )
    parser.add_argument(
        "--readonly", action="store_true", help="refuse every change to AWS and to the state"
    )
    parser.add_argument(
        "--token-ttl",
        type=_positive_float,
        metavar="SECONDS",
        help="lifetime of execution tokens (env CCSTATE_TOKEN_TTL; default 900)",
    )
    parser.add_argument(
        "--operation-timeout",
        type=_positive_float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for Cloud Control to finish a change (default 600)",
    )
    parser.add_argument(
        "--drift-interval",
        type=duration,
        metavar="DURATION",
        help="check every managed resource for drift this often (e.g. 1h, 15m), recording each "
        "check in history; fixes drift when the auto_remediation setting is on",
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (default) or streamable HTTP",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"HTTP bind address (default {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})"
    )


def config_from_args(args: argparse.Namespace) -> Any:
    from ccstate.app import ServeConfig, ServerOptions

    options = ServerOptions(
        backend=_get(args, "backend"),
        workspace=_get(args, "workspace"),
        readonly=bool(args.readonly),
        token_ttl=args.token_ttl,
        lock_timeout=_get(args, "lock_timeout"),
        operation_timeout=args.operation_timeout,
    )
    return ServeConfig(
        options=options,
        transport=args.transport,
        host=args.host,
        port=args.port,
        sandbox=bool(args.sandbox),
        sandbox_endpoint=args.sandbox_endpoint,
        drift_interval=_get(args, "drift_interval"),
    )


def _get(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value
