"""``python -m mcp_server``: the same server as ``ccstate serve``, without the CLI shell."""

from __future__ import annotations

import argparse
import logging
import sys

from ccstate.mcp_server.arguments import add_serve_arguments, config_from_args
from ccstate.mcp_server.server import serve
from ccstate.service.changes.redaction import redact_log_handlers
from ccstate.service.errors import CcstateError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp_server", description=__doc__)
    parser.add_argument("--backend", metavar="URL", help="state backend URL")
    parser.add_argument("--workspace", metavar="NAME", help="workspace name")
    parser.add_argument("--lock-timeout", metavar="SECONDS", help="lock wait (default 30)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    redact_log_handlers()  # secrets never reach the log, at any level
    try:
        return serve(config_from_args(args))
    except CcstateError as err:
        print(f"Error: {err.message}\nNext: {err.next_step}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
