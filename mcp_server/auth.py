"""Who calls the team server: bearer-token verifiers for the SDK's auth, and the per-request
principal.

The ``mcp`` SDK does the HTTP side (``AuthSettings``, its bearer middleware, 401 with
``WWW-Authenticate: Bearer resource_metadata=...``, 403 ``insufficient_scope``, RFC 9728
metadata, sessions bound to the credential that opened them). This module gives it
``TokenVerifier``s:

- ``UserTokenVerifier``: ccstate's own tokens (``ccstate users add``), looked up in the
  backend's ``users.json`` on every request, so a revoked or rotated token stops at once on
  every server of the team;
- ``JwtVerifier``: JWTs of the team's identity provider, checked against its JWKS (URL or file)
  for signature, issuer, audience (always: the SDK does not check it unless asked), expiry and
  not-before; scopes from ``scope`` or ``scp``.

Every token carries the scope ``ccstate`` (the SDK refuses others with 403 insufficient_scope)
and a role scope ``ccstate:<role>``. ``RoleMiddleware`` turns the verified token into the
request's ``Principal`` (established ``authenticated``), hides the tools the role may not call
from ``tools/list`` and refuses them in ``tools/call`` (``mcp_server.roles``: each tool's
action, asked of the policy).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
from ccstate.mcp_server.metrics import Metrics
from ccstate.mcp_server.results import failed
from ccstate.mcp_server.roles import check_tool, visible_tools
from ccstate.mcp_server.wording import MCP_WORDS
from ccstate.service.authz.policy import ROLES, Policy
from ccstate.service.authz.principal import Principal
from ccstate.service.authz.users import UserDirectory
from ccstate.service.errors import Forbidden
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, ServerRequestContext

log = logging.getLogger("ccstate.auth")

ACCESS_SCOPE = "ccstate"
ROLE_SCOPE = "ccstate:"  # ccstate:viewer, ccstate:operator, ccstate:approver, ccstate:admin
USER_ISSUER = "ccstate-users"

# The request's principal, set by RoleMiddleware around each MCP request.
_request_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "ccstate_request_principal", default=None
)
_in_request: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "ccstate_in_request", default=False
)


def role_scopes(role: str) -> list[str]:
    return [ACCESS_SCOPE, f"{ROLE_SCOPE}{role}"]


def role_of(scopes: list[str]) -> str:
    """The highest role among ``ccstate:<role>`` scopes; ``viewer`` when none is given."""
    named = [s.removeprefix(ROLE_SCOPE) for s in scopes if s.startswith(ROLE_SCOPE)]
    ranked = [r for r in ROLES if r in named]
    return ranked[-1] if ranked else "viewer"


def person_of(token: AccessToken) -> str:
    return str((token.claims or {}).get("person") or token.subject or token.client_id)


def refused(metrics: Metrics | None, reason: str, who: str | None, kind: str) -> None:
    """Log a refused token with who and why (never the token); count it."""
    log.warning("refused %s: who=%s why=%s", kind, who or "unknown", reason)
    if metrics is not None:
        metrics.token_refusals.labels(reason=reason).inc()


# --------------------------------------------------------------------------- verifiers


class UserTokenVerifier:
    """ccstate's own bearer tokens (``ccs1.<name>.<secret>``)."""

    def __init__(self, users: UserDirectory, resource: str, metrics: Metrics | None) -> None:
        self._users = users
        self._resource = resource
        self._metrics = metrics

    async def verify_token(self, token: str) -> AccessToken | None:
        checked = await self._users.check(token)
        if checked.user is None:
            refused(self._metrics, checked.reason, checked.name, "ccstate token")
            return None
        user = checked.user
        return AccessToken(
            token=token,
            client_id=f"ccstate-user:{user.name}",
            subject=user.name,
            scopes=role_scopes(user.role),
            resource=self._resource,
            claims={"iss": USER_ISSUER, "person": user.name},
        )


@dataclass(frozen=True)
class JwtSettings:
    issuer: str
    audience: str
    jwks_url: str | None = None
    jwks_file: Path | None = None
    user_claim: str = "sub"  # e.g. "email" or "preferred_username"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256", "EdDSA")
    leeway_seconds: float = 30.0


class JwtVerifier:
    """JWTs of an identity provider, checked against its JWKS."""

    def __init__(self, settings: JwtSettings, metrics: Metrics | None) -> None:
        if not (settings.jwks_url or settings.jwks_file):
            raise ValueError("a JWT verifier needs a JWKS URL or file")
        self._settings = settings
        self._metrics = metrics
        self._client = jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None
        self._keys = (
            jwt.PyJWKSet.from_json(settings.jwks_file.read_text()) if settings.jwks_file else None
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await asyncio.to_thread(self._decode, token)
        except jwt.PyJWTError as exc:
            refused(self._metrics, _jwt_reason(exc), _unverified_subject(token), "JWT")
            return None
        scopes = _scopes(claims)
        person = str(claims.get(self._settings.user_claim) or claims["sub"])
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or claims["sub"]),
            subject=str(claims["sub"]),
            scopes=scopes,
            expires_at=int(claims["exp"]),
            resource=self._settings.audience,
            claims={"iss": claims["iss"], "person": person},
        )

    def _decode(self, token: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            self._signing_key(token),
            algorithms=list(self._settings.algorithms),
            audience=self._settings.audience,
            issuer=self._settings.issuer,
            leeway=self._settings.leeway_seconds,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )

    def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS file")


def _jwt_reason(exc: jwt.PyJWTError) -> str:
    reasons = [
        (jwt.ExpiredSignatureError, "expired"),
        (jwt.ImmatureSignatureError, "not yet valid"),
        (jwt.InvalidAudienceError, "wrong audience"),
        (jwt.InvalidIssuerError, "wrong issuer"),
        (jwt.MissingRequiredClaimError, "missing claim"),
        (jwt.InvalidSignatureError, "bad signature"),
        (jwt.PyJWKClientError, "unknown signing key"),
        (jwt.InvalidKeyError, "unknown signing key"),
    ]
    return next((text for kind, text in reasons if isinstance(exc, kind)), "malformed")


def _unverified_subject(token: str) -> str | None:
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("sub"))
    except jwt.PyJWTError:
        return None


def _scopes(claims: dict[str, Any]) -> list[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    return [str(s) for s in scp] if isinstance(scp, list) else []


class TeamVerifier:
    """ccstate tokens first (they say so by their prefix), then the identity provider's JWTs."""

    def __init__(self, users: UserTokenVerifier, jwts: JwtVerifier | None) -> None:
        self._users = users
        self._jwts = jwts

    async def verify_token(self, token: str) -> AccessToken | None:
        if token.startswith("ccs1.") or self._jwts is None:
            return await self._users.verify_token(token)
        return await self._jwts.verify_token(token)


# --------------------------------------------------------------------------- the principal


def principal_from(token: AccessToken) -> Principal:
    """The authenticated person and role of a verified token (the AWS ARN is added later)."""
    return Principal(person_of(token), "authenticated", role=role_of(token.scopes))


def request_user(ctx: ServerRequestContext[Any, Any]) -> AccessToken | None:
    request = ctx.request
    scope = getattr(request, "scope", None) or {}
    user = scope.get("user")
    return user.access_token if isinstance(user, AuthenticatedUser) else None


class AuthenticatedIdentity:
    """``Runtime.identify`` on the team server: the person the request authenticated as, with
    the server's AWS caller ARN (the AWS principal stays ``aws_session``). Outside a request
    (the drift monitor) it is the server's own local identity."""

    def __init__(self, local: Callable[[], Awaitable[Principal]]) -> None:
        self._local = local

    async def __call__(self) -> Principal:
        person = _request_principal.get()
        base = await self._local()
        if person is None:
            if _in_request.get():
                raise Forbidden(
                    "This request carries no authenticated person.",
                    next_step="Send a bearer token: `Authorization: Bearer TOKEN`.",
                )
            return base
        return replace(person, aws_arn=base.aws_arn, host=base.host)


class RoleMiddleware:
    """MCP-level middleware: sets the request's principal, filters ``tools/list`` by role,
    refuses ``tools/call`` of a tool the role lacks, and counts every tool call."""

    def __init__(self, policy: Policy, metrics: Metrics | None, *, authenticated: bool) -> None:
        self._policy = policy
        self._metrics = metrics
        self._authenticated = authenticated

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        token = request_user(ctx)
        principal = principal_from(token) if token is not None else None
        reset = (_request_principal.set(principal), _in_request.set(self._authenticated))
        try:
            if ctx.method == "tools/call":
                return await self._call(ctx, call_next, principal)
            result = await call_next(ctx)
            if ctx.method == "tools/list":
                return self._visible(result, principal)
            return result
        finally:
            _request_principal.reset(reset[0])
            _in_request.reset(reset[1])

    async def _call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, who: Principal | None
    ) -> Any:
        tool = str((ctx.params or {}).get("name", ""))
        started = time.perf_counter()
        try:
            check_tool(self._policy, who, tool)
        except Forbidden as err:
            log.warning("refused tool call: who=%s tool=%s why=%s", _who(who), tool, err.message)
            self._count(tool, "forbidden", started, None)
            return failed(err.to_dict(MCP_WORDS))
        result = await call_next(ctx)
        data = _structured(result)
        outcome = "ok"
        if _is_error(result):
            outcome = str((data or {}).get("error") or "error")
        self._count(tool, outcome, started, data)
        return result

    def _visible(self, result: Any, who: Principal | None) -> Any:
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            tools = result["tools"]
            names = set(visible_tools(self._policy, who, [str(t.get("name")) for t in tools]))
            return {**result, "tools": [t for t in tools if t.get("name") in names]}
        tools = getattr(result, "tools", None)
        if tools is None:
            return result
        names = set(visible_tools(self._policy, who, [t.name for t in tools]))
        return result.model_copy(update={"tools": [t for t in tools if t.name in names]})

    def _count(self, tool: str, outcome: str, started: float, data: Any) -> None:
        if self._metrics is not None:
            self._metrics.tool_call(tool, outcome, time.perf_counter() - started, data)


def _who(principal: Principal | None) -> str:
    if principal is None:
        return "anonymous"
    return f"{principal.person} (role {principal.role})"


def _structured(result: Any) -> dict[str, Any] | None:
    if isinstance(result, dict):
        return result.get("structuredContent") or result.get("structured_content")
    data = getattr(result, "structured_content", None)
    if data is None:
        content = getattr(result, "content", None) or []
        text = "".join(getattr(c, "text", "") for c in content)
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
    return data if isinstance(data, dict) else None


def _is_error(result: Any) -> bool:
    if isinstance(result, dict):
        return bool(result.get("isError") or result.get("is_error"))
    return bool(getattr(result, "is_error", False))


__all__ = [
    "ACCESS_SCOPE",
    "AuthenticatedIdentity",
    "JwtSettings",
    "JwtVerifier",
    "RoleMiddleware",
    "TeamVerifier",
    "UserTokenVerifier",
    "principal_from",
    "role_scopes",
]
