"""``ccstate state ...``: read the state, its history and versions; restore, diff, pull, push,
migrate to another backend.

Handlers stay thin: every operation is a StateStore call. The JSON shape of each command is
documented in docs/cli.md and covered by tests/system/test_cli.py.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ccstate.argtypes import positive_int, serial_arg
from ccstate.commands import add_group
from ccstate.context import CliContext
from ccstate.service.errors import CcstateError, InvalidInput, NotFound
from ccstate.service.locking import hold_lock
from ccstate.service.names import validate_identifier
from ccstate.service.ports import LockScope
from ccstate.tables import (
    history_table,
    render_diff,
    render_resource,
    render_versions,
    resources_text,
)

if TYPE_CHECKING:  # imported where used: `state list` reads JSON without the state model
    from ccstate.output import Output, ProgressBar
    from ccstate.service.changes.schema import ResourceSchema
    from ccstate.service.state.listing import Listing
    from ccstate.service.state.model import ResourceState, StateDocument
    from ccstate.service.state.replay import StateView
    from ccstate.service.state.store import StateStore

DEFAULT_VERSIONS = 20
# Rows of `state list` for people when neither --limit nor --all is given: a screenful.
SCREEN_CHROME_LINES = 6  # title, blank, header, blank, "... more", the next prompt
MIN_LIST_ROWS = 10


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    state = add_group(subparsers, "state", "Inspect, restore, export and import the state.")

    def leaf(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser = state.add_parser(name, help=help_text, description=help_text, parents=[common])
        parser.set_defaults(handler=handler)
        return parser

    listing = leaf("list", "List the resources in the current state.", list_resources)
    rows = listing.add_mutually_exclusive_group()
    rows.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="show the first N resources (default: a screenful for people, all with --output json)",
    )
    rows.add_argument("--all", action="store_true", help="show every resource")

    show = leaf("show", "Show one resource's current (or past) properties.", show_resource)
    show.add_argument("identifier", metavar="ID", help="the resource's primary identifier")
    show.add_argument("--at", type=serial_arg, metavar="SERIAL", help="as it was at this serial")

    history = leaf("history", "Show every recorded change of one resource.", resource_history)
    history.add_argument("identifier", metavar="ID", help="the resource's primary identifier")

    versions = leaf("versions", "List state versions (commits), newest first.", list_versions)
    amount = versions.add_mutually_exclusive_group()
    amount.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_VERSIONS,
        metavar="N",
        help=f"show the newest N (default {DEFAULT_VERSIONS})",
    )
    amount.add_argument("--all", action="store_true", help="show every version")

    diff = leaf("diff", "Differences between two serials, by resource and property.", diff_serials)
    diff.add_argument("serial_a", type=serial_arg, metavar="A", help="the older serial")
    diff.add_argument("serial_b", type=serial_arg, metavar="B", help="the newer serial")

    restore = leaf(
        "restore",
        "Make the state equal to an earlier version, recorded as a new commit.",
        restore_version,
    )
    restore.add_argument("serial", type=serial_arg, metavar="SERIAL", help="the version to restore")
    restore.add_argument("--reason", metavar="TEXT", help="why, recorded in the history")

    pull = leaf("pull", "Write the whole state as one state.json document.", pull_document)
    pull.add_argument("file", nargs="?", metavar="FILE", help="where to write (default stdout)")

    push = leaf("push", "Replace the state with a state.json document (guarded).", push_document)
    push.add_argument("file", metavar="FILE", help="the document to import ('-' for stdin)")
    push.add_argument(
        "--force",
        action="store_true",
        help="import even from another lineage or an older serial (recorded in history)",
    )
    push.add_argument("--reason", metavar="TEXT", help="why, recorded in the history")

    remove = leaf(
        "rm",
        "Forget a resource: remove it from the state (recorded); AWS is not changed.",
        forget,
    )
    remove.add_argument("identifier", metavar="ID", help="the resource's primary identifier")
    remove.add_argument(
        "--reason", required=True, metavar="TEXT", help="why, recorded in its history"
    )

    adopted = subparsers.add_parser(
        "import",
        help="Adopt an existing AWS resource: read it through Cloud Control and record it.",
        description="Read TYPE ID through Cloud Control and record it in the state (operation "
        "'import'); AWS is not changed. The opposite of `ccstate state rm`.",
        parents=[common],
    )
    adopted.add_argument("resource_type", metavar="TYPE", help="e.g. AWS::S3::Bucket")
    adopted.add_argument("identifier", metavar="ID", help="the resource's primary identifier")
    adopted.add_argument(
        "--reason", required=True, metavar="TEXT", help="why, recorded in its history"
    )
    adopted.add_argument("--region", help="the resource's region (default: AWS_REGION)")
    adopted.set_defaults(handler=adopt)

    migrate = leaf(
        "migrate",
        "Copy the workspace's whole state, with its history, to another backend.",
        migrate_state,
    )
    migrate.add_argument(
        "--to",
        required=True,
        dest="target",
        metavar="URL",
        help="the backend to copy into (file:///path or s3://...); it must hold no state for "
        "this workspace",
    )


# ====================================================================== reading


async def list_resources(ctx: CliContext) -> None:
    limit = _list_limit(ctx)
    light = await _light_listing(ctx)
    if light is not None:
        workspace, listing = light
        rows = listing.rows
        keys = sorted(rows)
        data = {
            "workspace": workspace,
            "serial": listing.serial,
            "lineage": listing.lineage,
            "total": len(keys),
            "resources": [rows[k] for k in keys[:limit]],
        }
    else:
        async with ctx.open_state() as (_, store):
            view = await store.current()
            keys = sorted(view.resources)
            data = {
                "workspace": store.workspace,
                "serial": view.serial,
                "lineage": view.lineage,
                "total": len(keys),
                "resources": [_resource_row(view.resources[k]) for k in keys[:limit]],
            }
    if ctx.out.is_json:
        ctx.out.emit(data)
        return
    hint = "See them all with `ccstate state list --all`, or N with `--limit N`."
    ctx.out.write_text(resources_text(data, more_hint=hint))


async def _light_listing(ctx: CliContext) -> tuple[str, Listing] | None:
    """The workspace and its listing read as JSON (``service.state.listing``) on a local,
    unencrypted backend whose settings need no pydantic to check; None: read through the store,
    as every other command."""
    settings = ctx.light_settings
    if settings is None or settings.kms_key:
        return None
    from ccstate.backends.local_url import local_backend_path

    try:
        root = local_backend_path(settings.backend_url)
    except ValueError:
        return None  # the full path says what is wrong with the URL
    if root is None:
        return None
    from ccstate.backends.export_head import exported_head
    from ccstate.backends.local_objects import LocalObjectStore
    from ccstate.backends.local_paths import local_export_path, warn_if_shared
    from ccstate.service.state.listing import light_listing

    witness = exported_head(local_export_path(root, settings))
    listing = await light_listing(LocalObjectStore(root), settings.workspace, head_witness=witness)
    if listing is None:
        return None
    warn_if_shared(root)  # as opening the backend does (once: not when falling back)
    return settings.workspace, listing


def _list_limit(ctx: CliContext) -> int | None:
    """--limit N, --all (None), else all for scripts (JSON) and a screenful for people."""
    if ctx.args.all:
        return None
    if ctx.args.limit is not None:
        return int(ctx.args.limit)
    if ctx.out.is_json:
        return None
    lines = shutil.get_terminal_size().lines  # $LINES, the terminal, or 24 in a pipe
    return max(MIN_LIST_ROWS, lines - SCREEN_CHROME_LINES)


def _resource_row(res: ResourceState) -> dict[str, Any]:
    return {
        "identifier": res.identifier,
        "resource_type": res.resource_type,
        "region": res.region,
        "account_id": res.account_id,
        "created_at": res.created_at,
        "last_modified": res.last_modified,
        "drift": res.drift_status.status,
    }


async def show_resource(ctx: CliContext) -> None:
    identifier = validate_identifier(ctx.args.identifier)
    async with ctx.open_state() as (_, store):
        view = await _view(store, ctx.args.at)
        res = view.resources.get(identifier)
        if res is None:
            raise _not_in_state(identifier, store.workspace, view)
        body = res.model_dump(mode="json", exclude={"lineage"})
    data = {"workspace": store.workspace, "serial": view.serial, "resource": body}
    ctx.out.emit(data, lambda console: render_resource(console, data))


async def _view(store: StateStore, serial: int | None) -> StateView:
    return await store.current() if serial is None else await store.view_at(serial)


def _not_in_state(identifier: str, workspace: str, view: StateView) -> NotFound:
    if identifier in view.last_touched:
        return NotFound(
            f"Resource {identifier!r} is not in workspace '{workspace}' at serial {view.serial}: "
            "it was deleted or forgotten.",
            next_step=f"See `ccstate state history {identifier}`, or `state show "
            f"{identifier} --at SERIAL` for an earlier version.",
        )
    return NotFound(
        f"No resource {identifier!r} in workspace '{workspace}' at serial {view.serial}.",
        next_step="See `ccstate state list` for the identifiers in state.",
    )


async def resource_history(ctx: CliContext) -> None:
    identifier = validate_identifier(ctx.args.identifier)
    async with ctx.open_state() as (_, store):
        entries = await store.history(identifier)
        data = {
            "workspace": store.workspace,
            "identifier": identifier,
            "entries": [entry.model_dump(mode="json") for entry in entries],
        }
    ctx.out.emit(data, lambda console: console.print(history_table(data)))


async def list_versions(ctx: CliContext) -> None:
    limit = None if ctx.args.all else ctx.args.limit
    async with ctx.open_state() as (_, store):
        head = await store.head()
        versions = await store.versions(limit)
        data = {
            "workspace": store.workspace,
            "head": head,
            "versions": [v.model_dump(mode="json") for v in versions],
        }
    ctx.out.emit(data, lambda console: render_versions(console, data))


async def diff_serials(ctx: CliContext) -> None:
    a, b = ctx.args.serial_a, ctx.args.serial_b
    async with ctx.open_state() as (_, store):
        before = await store.view_at(a)
        after = await store.view_at(b)
    from ccstate.service.state.diff import diff_resources

    schemas = await _schemas_of(before.resources, after.resources)
    diffs = [d.to_dict() for d in diff_resources(before.resources, after.resources, schemas)]
    data = {
        "workspace": store.workspace,
        "from": a,
        "to": b,
        "summary": {kind: sum(d["change"] == kind for d in diffs) for kind in _DIFF_KINDS},
        "resources": diffs,
    }
    ctx.out.emit(data, lambda console: render_diff(console, data))


_DIFF_KINDS = ("added", "changed", "removed")


async def _schemas_of(*states: dict[str, ResourceState]) -> dict[str, ResourceSchema]:
    """The schemas of the changed resources' types, from the disk cache or the ones cfn-lint
    ships (never the network): they say which arrays are sets. Unknown types go without."""
    from ccstate.backends.schemas import CloudFormationSchemaProvider

    before, after = states
    types = {
        res.resource_type
        for key, res in after.items()
        if key in before and before[key].current_properties != res.current_properties
    }
    provider = CloudFormationSchemaProvider(offline=True)
    found: dict[str, ResourceSchema] = {}
    for type_name in sorted(types):
        with contextlib.suppress(CcstateError):
            found[type_name] = await provider.get_schema(type_name)
    return found


# ====================================================================== writing


async def restore_version(ctx: CliContext) -> None:
    from ccstate.service.state.model import CommitMeta

    serial = ctx.args.serial
    async with (
        ctx.open_state() as (backend, store),
        _workspace_lock(ctx, backend, store) as held,
    ):
        meta = CommitMeta(
            principal=ctx.principal(),
            explanation=f"Restore workspace '{store.workspace}' to serial {serial} (ccstate CLI).",
            user_intent=ctx.args.reason,
        )
        commit = await store.restore(serial, meta, lock=held)
    data = {
        "workspace": store.workspace,
        "restored_from": serial,
        "serial": commit.serial,
        "changes": [
            {"identifier": c.identifier, "resource_type": c.resource_type, "effect": _effect(c)}
            for c in commit.changes
        ],
    }
    ctx.out.emit(data, lambda console: _render_restore(console, data))


def _effect(change: Any) -> str:
    if change.properties_before is None:
        return "recreated in state"
    if change.properties_after is None:
        return "removed from state"
    return "properties restored"


def _render_restore(console: Any, data: dict[str, Any]) -> None:
    console.print(
        f"Restored workspace '{data['workspace']}' to serial {data['restored_from']} as new "
        f"serial {data['serial']} ({len(data['changes'])} resource(s) changed)."
    )
    for change in data["changes"]:
        console.print(f"  {change['identifier']}: {change['effect']}", markup=False)
    console.print(
        "Only the recorded state changed; the cloud resources themselves are untouched.",
        style="dim",
    )


async def pull_document(ctx: CliContext) -> None:
    async with ctx.open_state() as (_, store):
        doc = await store.export_document()
    if ctx.args.file is None:
        from ccstate.backends.export import document_bytes

        ctx.out.write_text(document_bytes(doc).decode())
        return
    path = _write(ctx.args.file, doc)
    data = {
        "workspace": store.workspace,
        "file": str(path),
        "serial": doc.metadata.serial,
        "lineage": doc.metadata.lineage,
        "resources": len(doc.resources),
    }
    ctx.out.emit(
        data,
        lambda console: console.print(
            f"Wrote {data['resources']} resource(s) at serial {data['serial']} to {path} "
            "(mode 0600).",
            markup=False,
        ),
    )


def _write(file: str, doc: StateDocument) -> Any:
    from ccstate.backends.export import write_document

    try:
        return write_document(file, doc)
    except OSError as exc:
        raise InvalidInput(
            f"Cannot write {file}: {exc.strerror or exc}.",
            next_step="Pass a file path in a directory you can write to.",
        ) from None


async def push_document(ctx: CliContext) -> None:
    from ccstate.backends.export import read_document, read_document_stream
    from ccstate.service.state.model import CommitMeta

    file = ctx.args.file
    doc = (
        read_document_stream(sys.stdin.buffer, where="<stdin>")
        if file == "-"
        else read_document(file)
    )
    async with ctx.open_state() as (backend, store), _workspace_lock(ctx, backend, store) as held:
        meta = CommitMeta(
            principal=ctx.principal(),
            explanation=f"Import of state document {file} (ccstate state push"
            + (" --force)." if ctx.args.force else ")."),
            user_intent=ctx.args.reason,
        )
        commit = await store.import_document(doc, meta, force=ctx.args.force, lock=held)
    data = {
        "workspace": store.workspace,
        "file": file,
        "serial": commit.serial,
        "resources": len(doc.resources),
        "forced": commit.forced,
    }
    ctx.out.emit(
        data,
        lambda console: console.print(
            f"Imported {data['resources']} resource(s) from {file} as serial {data['serial']}"
            + (" (forced)." if data["forced"] else "."),
            markup=False,
        ),
    )


async def migrate_state(ctx: CliContext) -> None:
    from ccstate.backends.factory import open_backend  # imported late: it pulls in the AWS SDK
    from ccstate.service.state.migrate import migrate

    async with ctx.open_state() as (backend, store), _workspace_lock(ctx, backend, store):
        if await store.head() == 0:
            raise NotFound(
                f"Workspace '{store.workspace}' in {backend.url} has no state to migrate.",
                next_step="Check --backend and --workspace; nothing was copied.",
            )
        target = await open_backend(ctx.args.target, settings=ctx.settings)
        try:
            with PhaseProgress(ctx.out) as progress:
                report = await migrate(
                    backend.objects, target.objects, store.workspace, progress=progress
                )
        finally:
            await target.close()
    data = report.to_dict()
    ctx.out.emit(data, lambda console: _render_migration(console, data))


def _render_migration(console: Any, data: dict[str, Any]) -> None:
    console.print(
        f"Migrated workspace '{data['workspace']}' from {data['source']} to {data['target']}: "
        f"{data['objects_copied']} object(s) copied; the state at each of serials 1 to "
        f"{data['serials_verified']} is identical in both.",
        markup=False,
    )
    console.print(
        "The source is unchanged. Point --backend or CCSTATE_BACKEND at the target to use it.",
        style="dim",
    )


class PhaseProgress:
    """The migration's progress callback as one bar per phase (copy, verify) on stderr."""

    LABELS = {"copy": "Copying objects", "verify": "Verifying serials"}

    def __init__(self, out: Output) -> None:
        self._out = out
        self._stack = ExitStack()
        self._phase: str | None = None
        self._bar: ProgressBar | None = None
        self._done = 0

    def __enter__(self) -> PhaseProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self._phase or self._bar is None:
            self._stack.close()
            self._stack = ExitStack()
            label = self.LABELS.get(phase, phase)
            self._bar = self._stack.enter_context(self._out.progress(total, label))
            self._phase, self._done = phase, 0
        self._bar.advance(done - self._done)
        self._done = done


def _workspace_lock(ctx: CliContext, backend: Any, store: StateStore) -> Any:
    """Hold the whole-workspace lock while a restore or import runs."""
    return hold_lock(
        backend.locks,
        LockScope(store.workspace),
        operation=f"ccstate state {ctx.args.state_command}",
        who=ctx.who(),
        lease_seconds=ctx.settings.lock_lease,
        timeout=ctx.settings.lock_timeout,
        on_wait=lambda: _waiting_for_lock(ctx),
    )


def _resource_locker(ctx: CliContext, backend: Any, store: StateStore) -> Any:
    """``lock(identifier, operation)`` for the use cases in service/state/adopt.py."""

    def lock(identifier: str, operation: str) -> Any:
        return hold_lock(
            backend.locks,
            LockScope(store.workspace, identifier),
            operation=f"ccstate {operation}",
            who=ctx.who(),
            lease_seconds=ctx.settings.lock_lease,
            timeout=ctx.settings.lock_timeout,
            on_wait=lambda: _waiting_for_lock(ctx),
        )

    return lock


def _waiting_for_lock(ctx: CliContext) -> None:
    # Terraform's words, on stderr: the wait can last up to --lock-timeout.
    ctx.out.note(
        f"Acquiring state lock. This may take a few moments (up to "
        f"{ctx.settings.lock_timeout:g} s; see `ccstate lock list`)..."
    )


# ====================================================================== forget and adopt


async def forget(ctx: CliContext) -> None:
    from ccstate.service.state.adopt import forget_resource

    async with ctx.open_state() as (backend, store):
        recorded = await forget_resource(
            store,
            identifier=ctx.args.identifier,
            reason=ctx.args.reason,
            principal=ctx.principal(),
            lock=_resource_locker(ctx, backend, store),
        )
    data = {"workspace": store.workspace, **recorded.to_dict()}
    ctx.out.emit(
        data,
        lambda console: console.print(
            f"Removed {recorded.resource_type} '{recorded.identifier}' from the state "
            f"(serial {recorded.serial}). AWS was not changed; `ccstate state history "
            f"{recorded.identifier}` shows it.",
            markup=False,
        ),
    )


async def adopt(ctx: CliContext) -> None:
    from ccstate.backends.cloudcontrol import CloudControlProvider
    from ccstate.backends.schemas import CloudFormationSchemaProvider
    from ccstate.service.state.adopt import adopt_resource

    region = ctx.args.region or ctx.settings.region
    cloud = CloudControlProvider(region=region)
    try:
        async with ctx.open_state() as (backend, store):
            recorded = await adopt_resource(
                store,
                cloud,
                CloudFormationSchemaProvider(region=region),
                resource_type=ctx.args.resource_type,
                identifier=ctx.args.identifier,
                reason=ctx.args.reason,
                principal=ctx.principal(),
                region=region,
                lock=_resource_locker(ctx, backend, store),
            )
    finally:
        await cloud.close()
    data = {"workspace": store.workspace, **recorded.to_dict()}
    ctx.out.emit(
        data,
        lambda console: console.print(
            f"Imported {recorded.resource_type} '{recorded.identifier}' into the state "
            f"(serial {recorded.serial}, region {recorded.region}). AWS was not changed.",
            markup=False,
        ),
    )
