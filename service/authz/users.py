"""The team's users: who may call the HTTP server, with which role, and their bearer tokens.

One object, ``users.json`` in the backend root (beside ``config.json``; names ending in
``.json`` are reserved there, so no workspace collides), shared by every server on the
backend. It holds per user: the role, a random per-user salt and HMAC-SHA256(salt, secret) of
the token's secret, never the token. A token is ``ccs1.<name, base64url>.<secret>``: the name
finds the record with one read, the secret (256 random bits) is checked in constant time.

A fast keyed hash is enough because the secret is random and long (a password would need
scrypt; a 256-bit token cannot be guessed from its hash either way), and it keeps the check
cheap on every request (docs/decisions.md, "The team server").

Changes use the store's compare-and-swap (``put(if_match=etag)``), so two admins adding users
at once on two machines both land. Revocation takes effect on the next request of every
server: the verifier reads the record on each request, nothing is cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ccstate.service.authz.policy import ROLES, Role
from ccstate.service.errors import InvalidInput, NotFound, PreconditionFailed
from ccstate.service.ports import ObjectStore
from ccstate.service.retry import full_jitter, retry_transient

USERS_KEY = "users.json"
TOKEN_PREFIX = "ccs1"  # noqa: S105 (the marker of a ccstate token, not a secret)
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$")
_CAS_ATTEMPTS = 12
_CAS_FIRST_WAIT, _CAS_MAX_WAIT = 0.01, 0.5  # seconds


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: Role
    salt: str  # hex
    token_hash: str  # hex HMAC-SHA256(salt, secret)
    created_at: str
    created_by: str
    rotated_at: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        """What ``users list`` shows: no salt, no hash."""
        body = asdict(self)
        del body["salt"], body["token_hash"]
        body["active"] = self.active
        return body


@dataclass(frozen=True)
class IssuedToken:
    """A new token, shown once; only its hash is kept."""

    user: UserRecord
    token: str


@dataclass(frozen=True)
class TokenCheck:
    user: UserRecord | None  # None: refused
    name: str | None  # the name the token claims, for the log
    reason: str  # why it was refused


def validate_user_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"Invalid user name {name!r}: use 1-128 letters, digits or '_', '.', '@', '+', '-', "
            "starting with a letter or digit.",
            next_step="Pass a login or an e-mail address, e.g. 'alice' or 'alice@example.com'.",
        )
    return name


def validate_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidInput(
            f"Unknown role {role!r}.",
            next_step=f"Use one of: {', '.join(ROLES)}.",
        )
    return role  # type: ignore[return-value]


def parse_token(token: str) -> tuple[str, str] | None:
    """(name, secret) of a ccstate token, or None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[2]:
        return None
    try:
        name = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (name, parts[2]) if _NAME.fullmatch(name) else None


def _digest(salt: str, secret: str) -> str:
    return hmac.new(bytes.fromhex(salt), secret.encode(), hashlib.sha256).hexdigest()


def _new_token(name: str) -> tuple[str, str, str]:
    """(token, salt, hash) for ``name``."""
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
    return f"{TOKEN_PREFIX}.{encoded}.{secret}", salt, _digest(salt, secret)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class UserDirectory:
    """Add, list, revoke and rotate users; verify a presented token."""

    def __init__(self, objects: ObjectStore, key: str = USERS_KEY) -> None:
        self._objects = objects
        self._key = key

    async def add(self, name: str, role: str, *, by: str) -> IssuedToken:
        name, checked_role = validate_user_name(name), validate_role(role)
        token, salt, digest = _new_token(name)
        record = UserRecord(name, checked_role, salt, digest, _now(), by)

        def change(users: dict[str, UserRecord]) -> None:
            existing = users.get(name)
            if existing is not None and existing.active:
                raise PreconditionFailed(
                    f"User '{name}' already exists (role {existing.role}).",
                    next_step="Rotate their token (${users_rotate}), or revoke the user first "
                    "(${users_revoke}).",
                )
            users[name] = record

        await self._update(change)
        return IssuedToken(record, token)

    async def rotate(self, name: str, *, by: str) -> IssuedToken:
        """A new token for ``name``; the old one stops working at once."""
        token, salt, digest = _new_token(validate_user_name(name))
        rotated: list[UserRecord] = []

        def change(users: dict[str, UserRecord]) -> None:
            current = self._active(users, name)
            rotated[:] = [replace(current, salt=salt, token_hash=digest, rotated_at=_now())]
            users[name] = rotated[0]

        await self._update(change)
        return IssuedToken(rotated[0], token)

    async def revoke(self, name: str, *, by: str) -> UserRecord:
        validate_user_name(name)
        revoked: list[UserRecord] = []

        def change(users: dict[str, UserRecord]) -> None:
            current = self._active(users, name)
            revoked[:] = [replace(current, revoked_at=_now(), revoked_by=by)]
            users[name] = revoked[0]

        await self._update(change)
        return revoked[0]

    async def list(self) -> list[UserRecord]:
        users, _ = await self._load()
        return sorted(users.values(), key=lambda u: u.name)

    async def verify(self, token: str) -> UserRecord | None:
        """The active user the token belongs to, or None (unknown, wrong or revoked)."""
        return (await self.check(token)).user

    async def check(self, token: str) -> TokenCheck:
        """The user and, when refused, why (for the refusal log; never the token)."""
        parsed = parse_token(token)
        if parsed is None:
            return TokenCheck(None, None, "not a ccstate token")
        name, secret = parsed
        users, _ = await self._load()
        user = users.get(name)
        if user is None:
            return TokenCheck(None, name, "unknown user")
        if not hmac.compare_digest(_digest(user.salt, secret), user.token_hash):
            return TokenCheck(None, name, "wrong or rotated token")
        if not user.active:
            return TokenCheck(None, name, "revoked user")
        return TokenCheck(user, name, "")

    @staticmethod
    def _active(users: dict[str, UserRecord], name: str) -> UserRecord:
        current = users.get(name)
        if current is None or not current.active:
            raise NotFound(
                f"There is no active user '{name}'.",
                next_step="See the users (${users_list}); add one with ${users_add}.",
            )
        return current

    async def _load(self) -> tuple[dict[str, UserRecord], str | None]:
        stored = await self._objects.get(self._key)
        if stored is None:
            return {}, None
        body = json.loads(stored.body)
        users = {u["name"]: UserRecord(**u) for u in body.get("users", [])}
        return users, stored.etag

    async def _update(self, change: Any) -> None:
        """Read, change, write back if nobody wrote in between; else again, after a jittered
        wait so that admins who collided once do not collide again in lockstep."""
        try:
            async for attempt in retry_transient(
                lambda e: isinstance(e, _LostRace),
                attempts=_CAS_ATTEMPTS,
                wait=full_jitter(_CAS_FIRST_WAIT, _CAS_MAX_WAIT),
            ):
                with attempt:
                    await self._write_once(change)
        except _LostRace:
            raise PreconditionFailed(
                "The user list changed under us too often; nothing was changed.",
                next_step="Try again.",
            ) from None

    async def _write_once(self, change: Any) -> None:
        users, etag = await self._load()
        change(users)
        body = json.dumps(
            {"version": FORMAT_VERSION, "users": [asdict(u) for u in users.values()]},
            indent=1,
            sort_keys=True,
        ).encode()
        if etag is None:
            if not await self._objects.put_if_absent(self._key, body):
                raise _LostRace
            return
        try:
            await self._objects.put(self._key, body, if_match=etag)
        except PreconditionFailed as lost:
            raise _LostRace from lost


class _LostRace(Exception):
    """Another writer changed the user list between our read and our write."""
