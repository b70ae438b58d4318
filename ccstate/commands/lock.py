"""``ccstate lock ...``: see who holds which lease; remove one a crashed holder left behind."""

from __future__ import annotations

import argparse
from typing import Any

from ccstate.commands import add_group
from ccstate.context import CliContext
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


def _admin(backend: Any) -> Any:
    from ccstate.service.authz.admin import TeamAdmin
    from ccstate.service.authz.policy import Policy
    from ccstate.service.authz.users import UserDirectory

    return TeamAdmin(UserDirectory(backend.objects), backend.locks, Policy())


async def list_locks(ctx: CliContext) -> None:
    workspace = None if ctx.args.all_workspaces else ctx.workspace
    async with ctx.open_backend() as backend:
        rows = await _admin(backend).list_locks(None, workspace)
    data = {"workspace": workspace, "locks": rows}
    ctx.out.emit(data, lambda console: console.print(locks_table(data)))


async def force_unlock(ctx: CliContext) -> None:
    from ccstate.service.authz.admin import lock_scope

    async with ctx.open_backend() as backend:
        row = await _admin(backend).force_unlock(None, ctx.args.lock_id, by=ctx.who())
    data = {"unlocked": row}
    ctx.out.emit(
        data,
        lambda console: console.print(
            f"Removed lock {row['id']} on {lock_scope(row)} held by {row['who']} for "
            f"'{row['operation']}'.",
            markup=False,
        ),
    )
