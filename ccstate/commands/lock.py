"""``ccstate lock ...``: see who holds which lease; remove one a crashed holder left behind."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from ccstate.commands import add_group
from ccstate.context import CliContext
from ccstate.service.ports import LockInfo
from ccstate.tables import locks_table


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    lock = add_group(subparsers, "lock", "List and force-unlock state locks.")

    listing = lock.add_parser(
        "list", help="List locks, held and expired.", description="List locks.", parents=[common]
    )
    listing.add_argument(
        "--all-workspaces", action="store_true", help="every workspace, not only --workspace"
    )
    listing.set_defaults(handler=list_locks)

    unlock = lock.add_parser(
        "force-unlock",
        help="Remove a lock by id, whoever holds it.",
        description="Remove a lock by id, whoever holds it. Only do this when its holder has "
        "crashed or hung: a live holder's work would no longer be protected.",
        parents=[common],
    )
    unlock.add_argument("lock_id", metavar="ID", help="the lock id shown by `ccstate lock list`")
    unlock.set_defaults(handler=force_unlock)


async def list_locks(ctx: CliContext) -> None:
    workspace = None if ctx.args.all_workspaces else ctx.workspace
    async with ctx.open_backend() as backend:
        locks = await backend.locks.list_locks(workspace)
    now = datetime.now(UTC)
    data = {"workspace": workspace, "locks": [lock_row(info, now) for info in locks]}
    ctx.out.emit(data, lambda console: console.print(locks_table(data)))


def lock_row(info: LockInfo, now: datetime) -> dict[str, Any]:
    expires = info.expires if info.expires.tzinfo else info.expires.replace(tzinfo=UTC)
    return {**info.to_dict(), "expired": expires < now}


async def force_unlock(ctx: CliContext) -> None:
    async with ctx.open_backend() as backend:
        info = await backend.locks.force_unlock(ctx.args.lock_id)
    data = {"unlocked": lock_row(info, datetime.now(UTC))}
    ctx.out.emit(
        data,
        lambda console: console.print(
            f"Removed lock {info.id} on {_scope(info)} held by {info.who} for '{info.operation}'.",
            markup=False,
        ),
    )


def _scope(info: LockInfo) -> str:
    if info.resource is None:
        return f"workspace '{info.workspace}'"
    return f"resource '{info.resource}' in workspace '{info.workspace}'"
