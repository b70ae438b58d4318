"""``ccstate users ...``: the people who may call the team's HTTP servers, and their tokens.

Users live in the backend (``users.json`` in its root), so every server on the backend knows
them. A token is printed once, by ``add`` and ``rotate``; only a salted hash is stored.
Whoever can write the backend can manage users: that is the admin of the team's state.
"""

from __future__ import annotations

import argparse
from typing import Any

from ccstate.commands import add_group
from ccstate.context import CliContext
from ccstate.service.authz.policy import ROLES

ROLE_HELP = (
    "viewer: read tools; operator: changes; approver: approves others' changes; admin: "
    "everything. Each role includes the ones before it"
)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    users = add_group(subparsers, "users", "Manage the team server's users and bearer tokens.")

    add = users.add_parser(
        "add",
        help="Add a user with a role; prints their bearer token once.",
        description="Add a user with a role and print their bearer token, once: only a salted "
        "hash is kept. Give the token to the person; their MCP client sends it as "
        "`Authorization: Bearer TOKEN`.",
        parents=[common],
    )
    add.add_argument("name", metavar="NAME", help="login or e-mail address, e.g. alice")
    add.add_argument("--role", required=True, choices=ROLES, help=ROLE_HELP)
    add.set_defaults(handler=add_user)

    listing = users.add_parser(
        "list", help="List users, roles and when tokens were issued.", parents=[common]
    )
    listing.add_argument("--all", action="store_true", help="with revoked users")
    listing.set_defaults(handler=list_users)

    revoke = users.add_parser(
        "revoke",
        help="Revoke a user's token; every server refuses it on the next request.",
        parents=[common],
    )
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(handler=revoke_user)

    rotate = users.add_parser(
        "rotate",
        help="Issue a new token for a user; the old one stops working at once.",
        parents=[common],
    )
    rotate.add_argument("name", metavar="NAME")
    rotate.set_defaults(handler=rotate_user)


def _directory(backend: Any) -> Any:
    from ccstate.service.authz.users import UserDirectory

    return UserDirectory(backend.objects)


async def add_user(ctx: CliContext) -> None:
    async with ctx.open_backend() as backend:
        issued = await _directory(backend).add(ctx.args.name, ctx.args.role, by=ctx.who())
    _show_token(ctx, issued, "Added")


async def rotate_user(ctx: CliContext) -> None:
    async with ctx.open_backend() as backend:
        issued = await _directory(backend).rotate(ctx.args.name, by=ctx.who())
    _show_token(ctx, issued, "Rotated the token of")


def _admin(backend: Any) -> Any:
    from ccstate.service.authz.admin import TeamAdmin
    from ccstate.service.authz.policy import Policy

    return TeamAdmin(_directory(backend), backend.locks, Policy())


async def revoke_user(ctx: CliContext) -> None:
    async with ctx.open_backend() as backend:
        user = await _admin(backend).revoke_user(None, ctx.args.name, by=ctx.who())
    ctx.out.emit(
        {"revoked": user.public()},
        lambda console: console.print(
            f"Revoked {user.name} ({user.role}): every server refuses their token from the "
            "next request on.",
            markup=False,
        ),
    )


async def list_users(ctx: CliContext) -> None:
    async with ctx.open_backend() as backend:
        users = await _admin(backend).list_users(None, include_revoked=ctx.args.all)
    rows = [u.public() for u in users]
    ctx.out.emit({"users": rows}, lambda console: console.print(_table(rows)))


def _show_token(ctx: CliContext, issued: Any, verb: str) -> None:
    user = issued.user
    ctx.out.emit(
        {"user": user.public(), "token": issued.token},
        lambda console: console.print(
            f"{verb} {user.name} (role {user.role}). Their bearer token, shown only now:\n\n"
            f"{issued.token}\n",
            markup=False,
            soft_wrap=True,
        ),
    )
    ctx.out.note("Store it in the person's MCP client config or a secret manager.")


def _table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Team server users")
    for column in ("name", "role", "created", "rotated", "revoked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            row["role"],
            f"{row['created_at']} by {row['created_by']}",
            row["rotated_at"] or "-",
            row["revoked_at"] or "-",
        )
    return table
