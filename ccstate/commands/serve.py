"""``ccstate serve``: run the MCP server (stdio by default, or streamable HTTP)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ccstate.argtypes import duration
from ccstate.context import CliContext

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="Run the MCP server for AI assistants (stdio by default).",
        description="Run the ccstate MCP server. With --sandbox it runs fully offline against "
        "the built-in AWS sandbox. Client setup: docs/mcp-clients.md.",
        parents=[common],
    )
    add_serve_arguments(parser)
    parser.set_defaults(handler=run_serve)


def run_serve(ctx: CliContext) -> int:
    """A plain function: the server runs its own event loop."""
    from ccstate.app import serve

    return serve(config_from_args(ctx.args))


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
    add_team_arguments(parser)


def add_team_arguments(parser: argparse.ArgumentParser) -> None:
    """The HTTP server's authentication and TLS (docs/team.md)."""
    team = parser.add_argument_group("HTTP server: authentication and TLS (docs/team.md)")
    team.add_argument(
        "--no-auth",
        action="store_true",
        help="serve HTTP without authentication (refused unless --host is loopback; logs a "
        "warning). Without it every request needs a bearer token from `ccstate users add` or "
        "the identity provider",
    )
    team.add_argument(
        "--public-url",
        metavar="URL",
        help="the URL clients reach the server at, e.g. behind a proxy "
        "https://ccstate.example.com (the protected resource is URL/mcp)",
    )
    team.add_argument("--certfile", type=Path, metavar="PEM", help="TLS certificate (chain)")
    team.add_argument("--keyfile", type=Path, metavar="PEM", help="TLS private key")
    team.add_argument(
        "--jwt-issuer", metavar="URL", help="accept JWTs of this issuer (the `iss` claim)"
    )
    team.add_argument(
        "--jwt-audience",
        metavar="AUD",
        help="the `aud` JWTs must carry (default: the server's URL/mcp)",
    )
    keys = team.add_mutually_exclusive_group()
    keys.add_argument("--jwks-url", metavar="URL", help="the issuer's JWKS (signing keys)")
    keys.add_argument("--jwks-file", type=Path, metavar="FILE", help="a JWKS in a file")
    team.add_argument(
        "--jwt-user-claim",
        default="sub",
        metavar="CLAIM",
        help="the claim that names the person (default sub; e.g. email)",
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
        team=team_options(args),
    )


def team_options(args: argparse.Namespace) -> Any:
    from ccstate.app import TeamOptions

    if args.transport != "http" and (args.no_auth or args.certfile or args.jwt_issuer):
        raise _usage("--no-auth, --certfile and --jwt-* apply to --transport http only")
    if bool(args.certfile) != bool(args.keyfile):
        raise _usage("--certfile and --keyfile go together")
    if args.jwt_issuer and not (args.jwks_url or args.jwks_file):
        raise _usage("--jwt-issuer needs --jwks-url or --jwks-file (the issuer's signing keys)")
    return TeamOptions(
        auth=not args.no_auth,
        public_url=args.public_url,
        certfile=args.certfile,
        keyfile=args.keyfile,
        jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience,
        jwks_url=args.jwks_url,
        jwks_file=args.jwks_file,
        jwt_user_claim=args.jwt_user_claim,
    )


def _usage(message: str) -> Exception:
    from ccstate.service.errors import InvalidInput

    return InvalidInput(message, next_step="See `ccstate serve --help` and docs/team.md.")


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
