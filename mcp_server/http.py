"""The team server's HTTP side: the SDK's streamable HTTP app with its auth, plus ccstate's
guard, ``/healthz`` and ``/metrics``, served by uvicorn (with TLS when given a certificate).

The SDK builds the app: ``AuthenticationMiddleware`` with our ``TokenVerifier``, the bearer
check on ``/mcp`` (401 ``WWW-Authenticate: Bearer ... resource_metadata=...``; 403
``insufficient_scope`` without the ``ccstate`` scope) and the RFC 9728 metadata at
``/.well-known/oauth-protected-resource/mcp``. ``TeamGuard`` runs inside its authentication:

- a request naming an MCP session that another principal opened is refused (404, as if the
  session did not exist, the SDK's own answer), whatever the SDK version does;
- a ``tools/call`` of a tool the caller's role lacks is refused with 403 ``insufficient_scope``
  and the role scope it needs (MCP's step-up answer), before it reaches the server;
- every refusal on ``/mcp`` (401, 403, 404 of another's session) is logged with who and why,
  and counted in ``/metrics``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccstate.mcp_server.auth import (
    ACCESS_SCOPE,
    ROLE_SCOPE,
    AuthenticatedIdentity,
    JwtSettings,
    JwtVerifier,
    RoleMiddleware,
    TeamVerifier,
    UserTokenVerifier,
    principal_from,
)
from ccstate.mcp_server.metrics import Metrics
from ccstate.mcp_server.roles import check_tool, least_role_for_tool
from ccstate.mcp_server.runtime import Runtime
from ccstate.mcp_server.server import build_server
from ccstate.service.authz.policy import Policy
from ccstate.service.authz.users import UserDirectory
from ccstate.service.errors import ConfigError, Forbidden
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import principal_components
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from pydantic import AnyHttpUrl
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ccstate.http")

MCP_PATH = "/mcp"
SESSION_HEADER = "mcp-session-id"
MAX_SESSIONS = 100_000  # owners remembered; the SDK's own limit of open sessions is lower
MAX_PEEK = 4 * 1024 * 1024  # bodies above this go on unread (the SDK refuses them anyway)
_LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HttpOptions:
    host: str
    port: int
    public_url: str | None = None  # what clients connect to, e.g. https://ccstate.example.com
    certfile: Path | None = None
    keyfile: Path | None = None
    auth: bool = True

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.certfile else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def resource_url(self) -> str:
        """The protected resource (RFC 8707/9728): the MCP endpoint's URL."""
        return self.base_url + MCP_PATH


def add_routes(server: MCPServer, metrics: Metrics, *, auth: bool) -> None:
    """``/healthz`` (open, for load balancers) and ``/metrics`` (a bearer token of any role when
    the server requires authentication; Prometheus sends one with ``authorization:``)."""

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @server.custom_route("/metrics", methods=["GET"])
    async def metrics_endpoint(request: Request) -> Response:
        if auth and not isinstance(request.scope.get("user"), AuthenticatedUser):
            return JSONResponse(
                {"error": "invalid_token", "error_description": "Authentication required"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)


def build_app(server: MCPServer, options: HttpOptions, policy: Policy, metrics: Metrics) -> Any:
    app = server.streamable_http_app(host=options.host)
    # Inside the SDK's authentication (it appends after Authentication and AuthContext), so
    # the guard sees the verified user; Starlette builds the stack on the first request.
    metadata = str(build_resource_metadata_url(AnyHttpUrl(options.resource_url)))
    app.user_middleware.append(
        Middleware(TeamGuard, policy=policy, metrics=metrics, metadata_url=metadata)
    )
    return app


async def serve_http_team(
    runtime: Runtime,
    options: HttpOptions,
    *,
    users: UserDirectory,
    jwt: JwtSettings | None,
    metrics: Metrics,
    background: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve ``runtime``'s tools on streamable HTTP until interrupted: with bearer-token
    authentication unless ``options.auth`` is off (loopback only), roles, ``/healthz`` and
    ``/metrics``. ``background`` (the drift monitor) runs beside it."""
    import anyio
    import uvicorn

    server = team_server(runtime, options, users=users, jwt=jwt, metrics=metrics)
    app = build_app(server, options, runtime.policy, metrics)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level="warning",
        ssl_certfile=str(options.certfile) if options.certfile else None,
        ssl_keyfile=str(options.keyfile) if options.keyfile else None,
    )
    log.warning(
        "MCP server on %s (%s)",
        options.resource_url,
        "bearer tokens required" if options.auth else "NO AUTHENTICATION: --no-auth",
    )
    async with anyio.create_task_group() as tasks:
        if background is not None:
            tasks.start_soon(background)
        await uvicorn.Server(config).serve()
        tasks.cancel_scope.cancel()


def team_server(
    runtime: Runtime,
    options: HttpOptions,
    *,
    users: UserDirectory,
    jwt: JwtSettings | None,
    metrics: Metrics,
) -> MCPServer:
    """The MCP server with the SDK's auth configured for the team (or none with --no-auth)."""
    check_binding(options)
    settings = verifier = None
    if options.auth:
        verifier = TeamVerifier(
            UserTokenVerifier(users, options.resource_url, metrics),
            JwtVerifier(jwt, metrics) if jwt is not None else None,
        )
        settings = AuthSettings(
            issuer_url=AnyHttpUrl(jwt.issuer if jwt is not None else options.base_url),
            resource_server_url=AnyHttpUrl(options.resource_url),
            required_scopes=[ACCESS_SCOPE],
            # The verifiers check the audience themselves (JwtVerifier: `aud`; ccstate
            # tokens are for this team's servers only), so the SDK need not compare it.
            validate_token_resource=False,
        )
        runtime.identify = AuthenticatedIdentity(runtime.identify)
    middleware = [RoleMiddleware(runtime.policy, metrics, authenticated=options.auth)]
    server = build_server(runtime, auth=settings, token_verifier=verifier, middleware=middleware)
    add_routes(server, metrics, auth=options.auth)
    return server


def check_binding(options: HttpOptions) -> None:
    """Authentication may be switched off only on loopback, and never silently."""
    if options.auth:
        return
    if not is_loopback(options.host):
        raise ConfigError(
            f"--no-auth is refused on {options.host}: beyond loopback every request must be "
            "authenticated.",
            next_step="Drop --no-auth and give each person a token (`ccstate users add NAME "
            "--role ROLE`), or bind to 127.0.0.1.",
        )
    log.warning(
        "authentication is OFF (--no-auth): anyone who can reach %s:%d acts as this server's "
        "user with every tool",
        options.host,
        options.port,
    )


# --------------------------------------------------------------------------- the guard


class TeamGuard:
    def __init__(
        self, app: ASGIApp, *, policy: Policy, metrics: Metrics, metadata_url: str
    ) -> None:
        self.app = app
        self.metadata_url = metadata_url
        self.policy = policy
        self.metrics = metrics
        self.owners: dict[str, tuple[Any, str]] = {}  # session id -> (principal key, who)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != MCP_PATH:
            await self.app(scope, receive, send)
            return
        user = scope.get("user")
        token = user.access_token if isinstance(user, AuthenticatedUser) else None
        who = _describe(token)
        session = _header(scope, SESSION_HEADER)
        if token is not None and session and not self._owns(session, token, who):
            await self._refuse(scope, send, 404, "session of another principal", who)
            return
        if token is not None and scope["method"] == "POST":
            receive, denied = await self._peek(scope, receive, token)
            if denied is not None:
                tool, needed = denied
                why = f"role may not call {tool} (needs {needed})"
                await self._step_up(scope, send, who, why, needed)
                return
        await self.app(scope, receive, self._watch(scope, send, token, who))

    def _owns(self, session: str, token: Any, who: str) -> bool:
        owner = self.owners.get(session)
        if owner is None:
            return True  # unknown here: the SDK answers 404 for sessions it does not know
        return owner[0] == principal_components(token)

    def _watch(self, scope: Scope, send: Send, token: Any, who: str) -> Send:
        """Remember who opened each session; log and count the refusals the SDK sends."""

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                session = headers.get(SESSION_HEADER)
                if token is not None and session and session not in self.owners:
                    self.owners[session] = (principal_components(token), who)
                    while len(self.owners) > MAX_SESSIONS:  # the SDK has long expired these
                        del self.owners[next(iter(self.owners))]
                status = int(message["status"])
                if status in (401, 403) or (status == 404 and _header(scope, SESSION_HEADER)):
                    why = _why(headers.get("www-authenticate", ""), status)
                    self._log_refusal(scope, status, why, who)
            await send(message)

        return watched

    async def _peek(
        self, scope: Scope, receive: Receive, token: Any
    ) -> tuple[Receive, tuple[str, str] | None]:
        """Read the body once, find tools/call of a tool the role lacks, replay the body."""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive), None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > MAX_PEEK and more:
                partial = {"type": "http.request", "body": b"".join(chunks), "more_body": True}
                return _replay([partial], receive), None
        body = b"".join(chunks)
        whole = {"type": "http.request", "body": body, "more_body": False}
        return _replay([whole], receive), self._denied(body, token)

    def _denied(self, body: bytes, token: Any) -> tuple[str, str] | None:
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        principal = principal_from(token)
        for message in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(message, dict) or message.get("method") != "tools/call":
                continue
            tool = str((message.get("params") or {}).get("name", ""))
            try:
                check_tool(self.policy, principal, tool)
            except Forbidden:
                return tool, least_role_for_tool(tool)
        return None

    async def _step_up(self, scope: Scope, send: Send, who: str, why: str, role: str) -> None:
        scopes = f"{ACCESS_SCOPE} {ROLE_SCOPE}{role}"
        metadata = self.metadata_url
        header = (
            f'Bearer error="insufficient_scope", scope="{scopes}", '
            f'error_description="{why}", resource_metadata="{metadata}"'
        )
        self._log_refusal(scope, 403, why, who)
        response = JSONResponse(
            {"error": "insufficient_scope", "error_description": why, "scope": scopes},
            status_code=403,
            headers={"WWW-Authenticate": header},
        )
        await response(scope, _no_receive, send)

    async def _refuse(self, scope: Scope, send: Send, status: int, why: str, who: str) -> None:
        self._log_refusal(scope, status, why, who)
        error = {"code": -32600, "message": "Session not found"}
        body = {"jsonrpc": "2.0", "id": None, "error": error}
        await JSONResponse(body, status_code=status)(scope, _no_receive, send)

    def _log_refusal(self, scope: Scope, status: int, why: str, who: str) -> None:
        client = scope.get("client") or ("?", 0)
        log.warning(
            "refused HTTP %d %s %s: who=%s client=%s why=%s",
            status,
            scope["method"],
            scope["path"],
            who,
            client[0],
            why,
        )
        self.metrics.http_refusals.labels(status=str(status), reason=why.split(" (")[0]).inc()


def _describe(token: Any) -> str:
    if token is None:
        return "anonymous"
    principal = principal_from(token)
    return f"{principal.person} (role {principal.role})"


def _why(www_authenticate: str, status: int) -> str:
    for part in www_authenticate.split(","):
        key, _, value = part.strip().removeprefix("Bearer ").partition("=")
        if key == "error_description":
            return value.strip('"')
    return {401: "no valid token", 403: "forbidden", 404: "unknown session"}.get(status, "")


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return value.decode()
    return None


def _replay(messages: list[Message], rest: Receive) -> Receive:
    """The messages already read, then the connection's own (its disconnect, when it comes)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await rest()

    return receive


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
