"""The team's administration: its users and the locks a crashed holder left behind.

One use case for every face: the CLI (the local person, whose authority is their backend
credentials: no role, so only the policy's read-only rule applies) and the team server's admin
tools (an authenticated person whose role must allow ``manage_users`` or ``force_unlock``).
Each call asks the one policy first, and logs what it changed with who did it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ccstate.service.authz.policy import Policy
from ccstate.service.authz.principal import Principal
from ccstate.service.authz.users import UserDirectory, UserRecord
from ccstate.service.ports import Clock, LockInfo, LockManager, SystemClock

log = logging.getLogger("ccstate.admin")


def lock_row(info: LockInfo, now: datetime) -> dict[str, Any]:
    """A lock as the faces show it: its record and whether its lease ran out."""
    expires = info.expires if info.expires.tzinfo else info.expires.replace(tzinfo=UTC)
    return {**info.to_dict(), "expired": expires < now}


def lock_scope(row: dict[str, Any]) -> str:
    """What a lock row (``lock_row``) covers, in words."""
    if row.get("resource") is None:
        return f"workspace '{row['workspace']}'"
    return f"resource '{row['resource']}' in workspace '{row['workspace']}'"


@dataclass
class TeamAdmin:
    users: UserDirectory
    locks: LockManager
    policy: Policy
    clock: Clock | None = None

    async def list_users(
        self, principal: Principal | None, *, include_revoked: bool = False
    ) -> list[UserRecord]:
        self.policy.check_role(principal, "manage_users")
        return [u for u in await self.users.list() if include_revoked or u.active]

    async def revoke_user(
        self, principal: Principal | None, name: str, *, by: str | None = None
    ) -> UserRecord:
        """Revoke ``name``'s token: every server refuses it from its next request on."""
        self.policy.check_role(principal, "manage_users")
        by = by or _describe(principal)
        revoked = await self.users.revoke(name, by=by)
        log.warning("user %s (role %s) revoked by %s", revoked.name, revoked.role, by)
        return revoked

    async def list_locks(self, principal: Principal | None, workspace: str | None) -> list[dict]:
        """Every lock of ``workspace`` (None: all), live and expired: a read."""
        self.policy.check_role(principal, "read")
        now = self._now()
        return [lock_row(info, now) for info in await self.locks.list_locks(workspace)]

    async def force_unlock(
        self, principal: Principal | None, lock_id: str, *, by: str | None = None
    ) -> dict[str, Any]:
        """Remove a lock by id, whoever holds it (``errors.LockNotFound`` when there is none)."""
        self.policy.check_role(principal, "force_unlock")
        row = lock_row(await self.locks.force_unlock(lock_id), self._now())
        log.warning(
            "lock %s on %s held by %s for '%s' force-unlocked by %s",
            row["id"],
            lock_scope(row),
            row["who"],
            row["operation"],
            by or _describe(principal),
        )
        return row

    def _now(self) -> datetime:
        return (self.clock or SystemClock()).now()


def _describe(principal: Principal | None) -> str:
    return principal.describe() if principal is not None else "the local user"
