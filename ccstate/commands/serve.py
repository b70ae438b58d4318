"""``ccstate serve``: run the MCP server (stdio by default, or streamable HTTP)."""

from __future__ import annotations

import argparse

from ccstate.context import CliContext


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

    return serve(config_from_args(ctx.args))
