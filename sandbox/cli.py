"""``ccstate sandbox`` / ``python -m sandbox``: run the sandbox in the foreground."""

from __future__ import annotations

import argparse
import gc
import logging
import shlex
import signal
import sys
import threading
from types import FrameType

from ccstate.sandbox.server import Sandbox

log = logging.getLogger(__name__)


def run(port: int | None, latency_ms: int, *, operation_ms: int = 0) -> None:
    """Serve until Ctrl-C or SIGTERM (``port`` None or 0: any free port).

    The endpoint and ``export`` lines go to stdout; logs go to stderr.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received signal %d, stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Sandbox(latency_ms=latency_ms, port=port or 0, operation_ms=operation_ms) as sandbox:
            # This process is the sandbox's alone: what exists now (moto, botocore, flask) lives
            # as long as it does, so the collector need not walk it again on every full pass.
            gc.freeze()
            print(f"# ccstate sandbox (moto + Cloud Control API) at {sandbox.endpoint_url}")
            for name, value in sandbox.env().items():
                print(f"export {name}={shlex.quote(value)}")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Offline AWS: moto plus a Cloud Control API endpoint on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="delay added to every Cloud Control call"
    )
    parser.add_argument(
        "--operation-ms",
        type=int,
        default=0,
        help="time each create/update/delete stays IN_PROGRESS before it runs",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run(args.port, args.latency_ms, operation_ms=args.operation_ms)
