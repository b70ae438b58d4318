"""``ccstate stack list|show|events|deploy FILE|rollback NAME|destroy NAME|recover NAME``:
related resources deployed, updated and destroyed together, in dependency order, all or nothing.
``deploy`` creates the stack, or updates it when it is deployed (as ``aws cloudformation deploy``
and ``rain deploy`` do). Docs: docs/stacks.md."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ccstate.commands import add_group
from ccstate.context import CliContext
from ccstate.service.errors import InvalidInput

EXIT_STACK_FAILED = 11  # the stack ended rolled back or failed (docs/cli.md)


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    stack = add_group(subparsers, "stack", "Deploy, list and destroy stacks of resources.")

    def sub(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser = stack.add_parser(name, help=help_text, description=help_text, parents=[common])
        parser.set_defaults(handler=handler)
        return parser

    sub("list", "List the stacks of the workspace.", list_stacks)
    sub("show", "Show one stack: status and resources.", show).add_argument("name")
    sub("events", "Show one stack's events, oldest first.", events).add_argument("name")
    deploy_parser = sub(
        "deploy", "Create a stack from a YAML or JSON file, or update it if it exists.", deploy
    )
    deploy_parser.add_argument(
        "file", help="{stack_name, resources, user_intent}, or a CloudFormation template"
    )
    deploy_parser.add_argument("--name", help="the stack's name (default: the file's, or its stem)")
    deploy_parser.add_argument("--reason", help="why (recorded as the user intent)")
    deploy_parser.add_argument(
        "--no-rollback",
        action="store_true",
        help="on failure stop where it is instead of rolling back: nothing new starts, the "
        "running steps finish. A create ends CREATE_FAILED with what it created; an update "
        "ends UPDATE_FAILED with the steps that landed (the old resources of replacements "
        "kept). Then deploy the fixed file again to finish, or `stack rollback NAME`",
    )
    deploy_parser.add_argument(
        "--plan",
        action="store_true",
        help="an update: show what it would add, update, replace and remove; change nothing",
    )
    deploy_parser.add_argument("--concurrency", type=int, default=10, help="parallel steps")
    rollback_parser = sub(
        "rollback", "Take a stack back to its template before the last update.", rollback
    )
    rollback_parser.add_argument("name")
    rollback_parser.add_argument("--reason", help="why (recorded as the user intent)")
    rollback_parser.add_argument(
        "--no-rollback",
        action="store_true",
        help="if the rollback (an update back) fails, stop where it is (UPDATE_FAILED) instead "
        "of undoing it. A stack UPDATE_FAILED is always undone from its journal",
    )
    destroy_parser = sub("destroy", "Delete a stack's resources, dependents first.", destroy)
    destroy_parser.add_argument("name")
    destroy_parser.add_argument("--reason", help="why (recorded as the user intent)")
    sub(
        "recover",
        "Finish a stack operation whose process died: roll back a create or an update, "
        "finish a destroy or an update's cleanup. A stack that stopped because rollback was off "
        "(CREATE_FAILED, UPDATE_FAILED) was not interrupted: recover changes nothing and says "
        "what to do (deploy again, or rollback/destroy).",
        recover,
    ).add_argument("name")


@asynccontextmanager
async def _parts(ctx: CliContext, concurrency: int = 10) -> AsyncIterator[Any]:
    from ccstate.app import ServerOptions, open_stacks

    options = ServerOptions(
        backend=getattr(ctx.args, "backend", None),
        workspace=getattr(ctx.args, "workspace", None),
        lock_timeout=getattr(ctx.args, "lock_timeout", None),
    )
    async with open_stacks(options, concurrency=concurrency) as parts:
        yield parts


def _progress(ctx: CliContext) -> Any:
    def show(event: Any) -> None:
        where = f" {event.identifier}" if event.identifier else ""
        why = f": {event.reason}" if event.reason else ""
        ctx.out.note(f"{event.timestamp}  {event.logical_id}{where}  {event.status}{why}")

    return show


def _row(result: Any) -> dict[str, Any]:
    row = {
        "stack_name": result.name,
        "status": result.status,
        "resources": result.resources,
        "reason": result.reason,
    }
    if result.next_step:
        row["next_step"] = _worded(result.next_step)
    return row


def _worded(text: str) -> str:
    from string import Template

    from ccstate.wording import CLI_WORDS

    return Template(text).safe_substitute(CLI_WORDS)


def _emit(ctx: CliContext, result: Any) -> int | None:
    data = _row(result) | {"state_serial": result.state_serial}

    def render(console: Any) -> None:
        console.print(f"Stack {result.name}: {result.status}", markup=False)
        for logical, res in result.resources.items():
            console.print(f"  {logical}  {res['type']}  {res['identifier']}", markup=False)
        if result.reason:
            console.print(f"  reason: {result.reason}", markup=False)
        if result.next_step:
            console.print(f"  next: {data['next_step']}", markup=False)

    ctx.out.emit(data, render)
    failed = result.status.endswith("FAILED") or "ROLLBACK" in result.status
    return EXIT_STACK_FAILED if failed else None


async def list_stacks(ctx: CliContext) -> None:
    async with _parts(ctx) as parts:
        found = await parts.stacks.list()
    rows = [_row(r) | {"resources": len(r.resources)} for r in found]

    def render(console: Any) -> None:
        if not rows:
            console.print("No stacks.")
        for row in rows:
            console.print(f"{row['stack_name']}  {row['status']}  {row['resources']} resources")

    ctx.out.emit({"stacks": rows}, render)


async def show(ctx: CliContext) -> int | None:
    async with _parts(ctx) as parts:
        result = await parts.stacks.show(ctx.args.name)
    _emit(ctx, result)
    return None


async def events(ctx: CliContext) -> None:
    async with _parts(ctx) as parts:
        result = await parts.stacks.show(ctx.args.name)

    def render(console: Any) -> None:
        for e in result.events:
            line = f"{e['timestamp']}  {e['logical_id']}  {e['identifier']}  {e['status']}"
            console.print(line + (f": {e['reason']}" if e["reason"] else ""), markup=False)

    ctx.out.emit({"stack_name": result.name, "events": result.events}, render)


async def deploy(ctx: CliContext) -> int | None:
    spec = load_stack_file(Path(ctx.args.file))
    name = ctx.args.name or spec.get("stack_name") or Path(ctx.args.file).stem
    intent = ctx.args.reason or spec.get("user_intent") or f"deploy {ctx.args.file}"
    async with _parts(ctx, ctx.args.concurrency) as parts:
        if ctx.args.plan:
            plan = await parts.stacks.plan_update(name, spec["resources"])
            _emit_plan(ctx, name, plan, intent)
            return None
        principal = await parts.identify()
        # The same steps as an assistant's: the whole plan explained (shown) and scanned, one
        # plan token for it, then the deploy under that token.
        token = await _shown_plan_token(ctx, parts, principal, name, spec["resources"], intent)
        result = await parts.stacks.deploy(
            principal,
            name,
            spec["resources"],
            intent,
            rollback=not ctx.args.no_rollback,
            on_event=_progress(ctx),
            plan_token=token,
        )
    return _emit(ctx, result)


def _emit_plan(ctx: CliContext, name: str, plan: Any, intent: str) -> None:
    data = {"stack_name": name, "actions": [a.to_dict() for a in plan.actions.values()]}

    def render(console: Any) -> None:
        console.print(plan.explain(intent), markup=False)

    ctx.out.emit(data, render)


async def _shown_plan_token(
    ctx: CliContext,
    parts: Any,
    principal: Any,
    name: str,
    resources: Any,
    intent: str,
    *,
    operation: str = "deploy",
) -> str | None:
    """The plan explained (and scanned) and shown on stderr; its one plan token (None: nothing
    to change)."""
    stacks = parts.stacks
    plan, token = await stacks.preview(principal, name, resources, intent, operation=operation)
    ctx.out.note(plan.explanation)
    return token.token if token is not None else None


async def rollback(ctx: CliContext) -> int | None:
    async with _parts(ctx) as parts:
        principal = await parts.identify()
        reason = ctx.args.reason or ""
        # As deploy: the rollback's plan (an update back, or the undo of a stopped update)
        # explained and shown, one plan token for it.
        token = await _shown_plan_token(
            ctx, parts, principal, ctx.args.name, None, reason, operation="rollback"
        )
        result = await parts.stacks.rollback(
            principal,
            ctx.args.name,
            user_intent=reason,
            rollback=not ctx.args.no_rollback,
            on_event=_progress(ctx),
            plan_token=token,
        )
    failed = _emit(ctx, result)
    from ccstate.service.stacks.update import STOPPED_UPDATE_UNDONE

    return None if result.reason == STOPPED_UPDATE_UNDONE else failed  # done, as asked


async def destroy(ctx: CliContext) -> int | None:
    async with _parts(ctx) as parts:
        principal = await parts.identify()
        reason = ctx.args.reason or ""
        token = await _shown_plan_token(
            ctx, parts, principal, ctx.args.name, None, reason, operation="destroy"
        )
        result = await parts.stacks.destroy(
            principal,
            ctx.args.name,
            user_intent=reason,
            on_event=_progress(ctx),
            plan_token=token,
        )
    return _emit(ctx, result)


async def recover(ctx: CliContext) -> int | None:
    async with _parts(ctx) as parts:
        principal = await parts.identify()
        result = await parts.stacks.recover(principal, ctx.args.name, on_event=_progress(ctx))
    _emit(ctx, result)
    return None


def load_stack_file(path: Path) -> dict[str, Any]:
    """The tool's input shape ({stack_name, resources, user_intent}) or a CloudFormation
    template (its Resources section), in YAML (short forms !Ref and !GetAtt too) or JSON."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(
            f"Cannot read the stack file {path}: {exc.strerror}.",
            next_step="Pass the path of a YAML or JSON stack file.",
        ) from None
    try:
        data = json.loads(text) if path.suffix == ".json" else _yaml(text)
    except ValueError as exc:
        raise InvalidInput(
            f"The stack file {path} is not valid YAML or JSON: {exc}",
            next_step="Fix the file: an object with resources (see `ccstate stack deploy --help`).",
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"The stack file {path} must hold an object.", next_step="Fix it.")
    if "Resources" in data and "resources" not in data:
        data = {"resources": data["Resources"]}
    if "resources" not in data:
        raise InvalidInput(
            f"The stack file {path} has no resources.",
            next_step="Give it a 'resources' (or CloudFormation 'Resources') section.",
        )
    return data


def _yaml(text: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def ref(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {"Ref": loader.construct_scalar(node)}  # type: ignore[arg-type]

    def get_att(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            return {"Fn::GetAtt": loader.construct_scalar(node)}
        return {"Fn::GetAtt": loader.construct_sequence(node)}  # type: ignore[arg-type]

    Loader.add_constructor("!Ref", ref)
    Loader.add_constructor("!GetAtt", get_att)
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader with two tags
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None
