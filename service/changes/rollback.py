"""Point-in-time rollback of one resource by the execution token of a past change.

``rollback_resource(identifier, token, to="after"|"before")`` brings a resource back to the
properties recorded right after (or before) the change that token authorized. The lineage entry
is found by the token's recorded hash (``sha256:<hex>``). The plan is computed from the LIVE
properties (not the state's record), so drift is undone too, and every property is classified:

- ``patch``: an update restores it;
- ``replace``: create-only, differs: only a new resource can have it (``allow_replacement``);
- ``unrecoverable``: the target value is a fingerprint (write-only, or a secret ccstate never
  stored): it cannot be set again (``accept_loss`` must name it);
- ``ignored``: read-only, AWS sets it;
- ``unchanged``: already as recorded; ``create``: set by re-creating a deleted resource.

The change then runs through the token workflow (``changes.runner``: generate, explain with the
plan as the intent, scan, act), recorded as operation ``rollback`` with ``rolled_back_to``. The
plan is bound to a digest of everything it was computed from; executing against a moved state
serial, changed live properties or another schema is refused as stale, also when there was no
prior state (the digest binds "absent" too).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ccstate.service.authz.principal import Principal
from ccstate.service.changes.redaction import load_salt, matches_fingerprint
from ccstate.service.changes.runner import ChangeRequest, ChangeRun, ChangeRunner, scan_refusal
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.drift.compare import (
    Comparer,
    PropertyDifference,
    contains_redacted,
    is_vacuous,
)
from ccstate.service.drift.plan import plan_patch
from ccstate.service.drift.rules import split_pointer
from ccstate.service.errors import CcstateError, InvalidInput, NotFound
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CloudProvider, SchemaProvider
from ccstate.service.state.model import LineageEntry, canonical_json, sha256_hex
from ccstate.service.state.store import StateStore

Direction = Literal["after", "before"]
PropertyAction = Literal["patch", "replace", "unrecoverable", "ignored", "unchanged", "create"]
PlanAction = Literal["none", "update", "create", "delete", "replace"]
RollbackStatus = Literal["DONE", "NOTHING_TO_DO", "REFUSED"]
ROLLBACK = "rollback"
ABSENT = "absent"
# A token's recorded form; a stack resource's adds its step: "#<logical>/<step>.<attempt>".
_HEX = re.compile(r"(sha256:)?([0-9a-f]{64})(#[A-Za-z0-9]+/[a-z-]+\.[0-9a-f]+)?")


class StalePlan(CcstateError):
    """The plan was computed from a state, live read or schema that has since changed."""

    code = "stale_plan"


class RollbackRefused(InvalidInput):
    """The plan needs a replacement or loses values the caller did not accept."""

    code = "rollback_refused"


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class PropertyPlan:
    name: str
    action: PropertyAction
    reason: str
    target: Any = None  # as recorded (secrets as fingerprints)
    live: Any = None  # redacted like the state

    def to_dict(self) -> dict[str, Any]:
        return {
            "property": self.name,
            "action": self.action,
            "reason": self.reason,
            "target": self.target,
            "live": self.live,
        }


@dataclass(frozen=True)
class PlanBinding:
    """What a plan was computed from; its digest is the plan's identity."""

    operation: str
    identifier: str
    resource_type: str
    token: str
    to: str
    action: str
    patch: list[dict[str, Any]] | None
    properties: dict[str, Any] | None
    state_serial: int  # the last serial that touched the resource, 0 when none
    in_state: bool
    live_digest: str  # sha256 of the redacted live properties, or "absent"
    schema_version: str

    def digest(self) -> str:
        return "sha256:" + sha256_hex(canonical_json(self.__dict__))

    def changed_since(self, earlier: PlanBinding) -> list[str]:
        """What moved, in words, between ``earlier`` and this binding."""
        moved = []
        if self.state_serial != earlier.state_serial or self.in_state != earlier.in_state:
            moved.append(
                f"the state of the resource moved (serial {earlier.state_serial} -> "
                f"{self.state_serial})"
            )
        if self.live_digest != earlier.live_digest:
            moved.append(live_moved(earlier.live_digest, self.live_digest))
        if self.schema_version != earlier.schema_version:
            moved.append("the resource type's schema changed")
        if not moved and self.digest() != earlier.digest():
            moved.append("the change it would make is different")
        return moved


@dataclass(frozen=True)
class RollbackPlan:
    identifier: str
    resource_type: str
    token: str
    to: Direction
    entry: LineageEntry
    action: PlanAction
    properties: list[PropertyPlan]
    patch: list[dict[str, Any]]
    create_properties: dict[str, Any] | None
    binding: PlanBinding

    @property
    def digest(self) -> str:
        return self.binding.digest()

    def named(self, action: PropertyAction) -> list[str]:
        return [p.name for p in self.properties if p.action == action]

    def summary(self) -> str:
        what = {
            "none": "nothing to change: the live resource already matches",
            "update": f"update {', '.join(self.named('patch'))}",
            "create": "re-create the deleted resource from the recorded properties",
            "delete": "delete the resource (it did not exist at that point)",
            "replace": f"replace the resource (create-only: {', '.join(self.named('replace'))})",
        }[self.action]
        lost = self.named("unrecoverable")
        tail = f"; cannot restore {', '.join(lost)} (only a fingerprint is kept)" if lost else ""
        return (
            f"Roll back {self.resource_type} '{self.identifier}' to its recorded properties "
            f"{self.to} the change of {self.token[:19]}... (serial {self.entry.serial}): "
            f"{what}{tail}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "resource_type": self.resource_type,
            "to": self.to,
            "execution_token": self.token,
            "target_serial": self.entry.serial,
            "target_operation": self.entry.operation,
            "action": self.action,
            "summary": self.summary(),
            "properties": [p.to_dict() for p in self.properties],
            "patch": self.patch,
            "create_properties": self.create_properties,
            "plan_digest": self.digest,
            "bound_to": {
                "state_serial": self.binding.state_serial,
                "in_state": self.binding.in_state,
                "live_properties": self.binding.live_digest,
                "schema_version": self.binding.schema_version,
            },
        }

    def check_allowed(self, allow_replacement: bool, accept_loss: Collection[str]) -> None:
        replaced = self.named("replace")
        if replaced and not allow_replacement:
            raise RollbackRefused(
                f"Rolling back '{self.identifier}' needs a replacement: create-only "
                f"{', '.join(replaced)} differ(s), and only a new resource can have the "
                "recorded value. The old resource is deleted first.",
                next_step="Show the plan to the user; if they accept a new resource, run the "
                "rollback again with allow_replacement.",
                field="allow_replacement",
                replace=replaced,
            )
        lost = [name for name in self.named("unrecoverable") if name not in set(accept_loss)]
        if lost:
            raise RollbackRefused(
                f"Rolling back '{self.identifier}' cannot restore {', '.join(lost)}: ccstate "
                "keeps only a fingerprint of write-only and secret values.",
                next_step="Set the value again yourself afterwards, and run the rollback with "
                f"accept_loss naming {', '.join(lost)} to accept that it is not restored.",
                field="accept_loss",
                unrecoverable=lost,
            )


@dataclass(frozen=True)
class RollbackOutcome:
    status: RollbackStatus
    plan: RollbackPlan
    runs: list[ChangeRun] = field(default_factory=list)
    reason: str = ""

    @property
    def identifier(self) -> str:
        """The resource's identifier now (a re-created one may have a new one)."""
        for run in reversed(self.runs):
            if run.outcome is not None and run.outcome.operation != "delete":
                return run.outcome.identifier
        return self.plan.identifier

    @property
    def execution_token(self) -> str | None:
        """The rollback's own token hash: roll back to ``before`` it to undo the rollback."""
        done = [r.outcome for r in self.runs if r.outcome is not None]
        return done[-1].execution_token if done else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": self.status,
            "identifier": self.identifier,
            "plan": self.plan.to_dict(),
            "reason": self.reason or self.plan.summary(),
        }
        steps = []
        for run in self.runs:
            step: dict[str, Any] = {"operation": run.generated.operation, "status": run.status}
            if run.outcome is not None:
                step |= {
                    "identifier": run.outcome.identifier,
                    "state_serial": run.outcome.state_serial,
                    "execution_token": run.outcome.execution_token,
                    "properties": run.outcome.properties,
                }
            if run.scan is not None:
                step["scan_status"] = run.scan.result.status
            step["explanation"] = run.explanation.text
            steps.append(step)
        out["steps"] = steps
        if self.execution_token:
            out["execution_token"] = self.execution_token
            out["rolled_back_to"] = self.plan.token
        return out


# --------------------------------------------------------------------------- the use case


class Rollbacks:
    """Plans and runs rollbacks. Holds no principal: every call takes the request's."""

    def __init__(
        self,
        store: StateStore,
        cloud: CloudProvider,
        schemas: SchemaProvider,
        runner: ChangeRunner,
        *,
        redact: Callable[[ResourceSchema, dict[str, Any]], dict[str, Any]],
        salt: bytes | None = None,
    ) -> None:
        self.store = store
        self.cloud = cloud
        self.schemas = schemas
        self.runner = runner
        self.redact = redact
        self._salt = salt

    async def plan(self, identifier: str, token: str, to: str = "after") -> RollbackPlan:
        identifier = validate_identifier(identifier)
        direction = _direction(to)
        wanted = recorded_hash(token)
        history = await self.store.history(identifier)
        entry = _entry_for(history, wanted, identifier)
        resource_type = await self._type_of(identifier, entry)
        schema = await self.schemas.get_schema(resource_type)
        target = entry.properties_after if direction == "after" else entry.properties_before
        live = await self._live(schema, identifier)
        recorded = await self.store.get_resource(identifier)
        current = recorded.current_properties if recorded is not None else None
        shown = self.redact(schema, live) if live is not None else None
        planner = _Planner(schema, await self._comparer(schema), target, live, current, shown)
        action, props, patch, create = planner.plan()
        binding = PlanBinding(
            operation=ROLLBACK,
            identifier=identifier,
            resource_type=resource_type,
            token=wanted,
            to=direction,
            action=action,
            patch=patch or None,
            properties=create,
            state_serial=(await self._position(identifier))[0],
            in_state=recorded is not None,
            live_digest=self._live_digest(schema, live),
            schema_version=schema_version(schema),
        )
        return RollbackPlan(
            identifier, resource_type, wanted, direction, entry, action, props, patch, create,
            binding,
        )  # fmt: skip

    async def rollback(
        self,
        principal: Principal,
        identifier: str,
        token: str,
        to: str = "after",
        *,
        allow_replacement: bool = False,
        accept_loss: Collection[str] = (),
        plan_digest: str = "",
        user_intent: str = "",
    ) -> RollbackOutcome:
        """Plan again and run the plan. ``plan_digest``: the digest of the plan the user saw;
        a plan that changed since is refused as stale."""
        plan = await self.plan(identifier, token, to)
        if plan_digest and plan_digest != plan.digest:
            raise StalePlan(
                f"The rollback plan for '{plan.identifier}' you reviewed is stale: the state, "
                "the live properties or the schema changed since it was computed.",
                next_step="Show the new plan to the user and confirm it again.",
                plan_digest=plan.digest,
                current=plan.to_dict()["bound_to"],
            )
        plan.check_allowed(allow_replacement, accept_loss)
        if plan.action == "none":
            return RollbackOutcome("NOTHING_TO_DO", plan)
        # The plan goes into the intent, so the explanation (and the record) shows it.
        intent = f"{user_intent} ({plan.summary()})" if user_intent else plan.summary()
        runs = []
        for request in self._requests(plan, intent):
            run = await self.runner.run(principal, request)
            runs.append(run)
            if not run.done:
                refused = scan_refusal(run.scan.result, "rollback") if run.scan else run.reason
                return RollbackOutcome("REFUSED", plan, runs, refused)
        return RollbackOutcome("DONE", plan, runs)

    # ------------------------------------------------------------------ internals

    def _requests(self, plan: RollbackPlan, intent: str) -> list[ChangeRequest]:
        base = ChangeRequest(
            operation="update",
            resource_type=plan.resource_type,
            identifier=plan.identifier,
            user_intent=intent,
            record_as=ROLLBACK,
            rolled_back_to=plan.token,
        )
        fresh = self._still(plan)
        delete = replace(base, operation="delete", precondition=fresh)
        create = replace(base, operation="create", identifier="", properties=plan.create_properties)
        if plan.action == "update":
            return [replace(base, patch=plan.patch, precondition=fresh)]
        if plan.action == "delete":
            return [delete]
        if plan.action == "create":
            return [replace(create, precondition=fresh)]
        return [delete, create]  # replace: the recorded name may be the one in use

    def _still(self, plan: RollbackPlan) -> Callable[[], Awaitable[None]]:
        """The check made under the resource's lock, just before the token is used."""

        async def check() -> None:
            now = await self.binding_now(plan)
            moved = now.changed_since(plan.binding)
            if moved:
                raise StalePlan(
                    f"The rollback of '{plan.identifier}' was not made: "
                    + "; ".join(moved)
                    + " since the plan was computed.",
                    next_step="Compute the rollback plan again and show it to the user.",
                    moved=moved,
                )

        return check

    async def binding_now(self, plan: RollbackPlan) -> PlanBinding:
        """The plan's binding as it is now (state serial, live digest, schema)."""
        schema = await self.schemas.get_schema(plan.resource_type)
        serial, in_state = await self._position(plan.identifier)
        return replace(
            plan.binding,
            state_serial=serial,
            in_state=in_state,
            live_digest=self._live_digest(schema, await self._live(schema, plan.identifier)),
            schema_version=schema_version(schema),
        )

    async def _position(self, identifier: str) -> tuple[int, bool]:
        """The last serial that touched the resource (0: none), and whether it is in state."""
        view = await self.store.current()
        return view.last_touched.get(identifier, 0), identifier in view.resources

    async def _type_of(self, identifier: str, entry: LineageEntry) -> str:
        commit = await self.store.commit_at(entry.serial or 0)
        for change in commit.changes:
            if change.identifier == identifier:
                return change.resource_type
        resources = (commit.replace_state or {}).get("resources", {})
        return str(resources[identifier]["resource_type"])  # an imported entry

    async def _live(self, schema: ResourceSchema, identifier: str) -> dict[str, Any] | None:
        try:
            return (await self.cloud.get_resource(schema.type_name, identifier)).properties
        except NotFound:
            return None

    def _live_digest(self, schema: ResourceSchema, live: dict[str, Any] | None) -> str:
        if live is None:
            return ABSENT
        return "sha256:" + sha256_hex(canonical_json(self.redact(schema, live)))

    async def _comparer(self, schema: ResourceSchema) -> Comparer:
        if self._salt is None:
            self._salt = await load_salt(self.store.objects, self.store.workspace)
        salt = self._salt

        def matcher(recorded: str, value: Any) -> bool:
            return matches_fingerprint(value, recorded, salt)

        return Comparer(schema, matcher=matcher)


# --------------------------------------------------------------------------- planning (pure)


class _Planner:
    """Classifies every top-level property of the target and the live resource."""

    def __init__(
        self,
        schema: ResourceSchema,
        comparer: Comparer,
        target: dict[str, Any] | None,
        live: dict[str, Any] | None,
        current: dict[str, Any] | None,
        shown_live: dict[str, Any] | None = None,
    ) -> None:
        self.schema = schema
        self.shown_live = shown_live or {}  # the live values as a plan may show them: redacted
        self.comparer = comparer
        self.target = target
        self.live = live
        self.current = current or {}
        self.read_only = _top(schema.read_only)
        self.create_only = [tuple(split_pointer(p)) for p in schema.create_only]

    def plan(
        self,
    ) -> tuple[PlanAction, list[PropertyPlan], list[dict[str, Any]], dict[str, Any] | None]:
        if self.target is None:
            if self.live is None:
                return "none", [], [], None
            return "delete", self._all("ignored", "the resource did not exist then"), [], None
        if self.live is None:
            props = self._for_create()
            return "create", props, [], self._create_properties(props)
        props, differences = self._classify()
        replaced = [p.name for p in props if p.action == "replace"]
        if replaced:
            return "replace", props, [], self._create_properties(props)
        patched = {p.name for p in props if p.action == "patch"}
        chosen = [d for d in differences if _name(d) in patched]
        patch, blocked = plan_patch(chosen, self.target, self.schema)
        if blocked:  # plan_patch found a fingerprint deeper in: it cannot be restored
            lost = {split_pointer(b.path)[0] for b in blocked}
            props = [_lost(p) if p.name in lost else p for p in props]
        return ("update" if patch else "none"), props, patch, None

    def _classify(self) -> tuple[list[PropertyPlan], list[PropertyDifference]]:
        assert self.target is not None and self.live is not None
        differences = self.comparer.compare(self.target, self.live)
        by_name: dict[str, list[PropertyDifference]] = {}
        for d in differences:
            by_name.setdefault(_name(d), []).append(d)
        for name in self._added_since():
            if name not in by_name:
                added = PropertyDifference(f"/{name}", None, self.live[name], "ADD", "low")
                differences.append(added)
                by_name[name] = [added]
        props = []
        for name in sorted(set(self.target) | set(self.live)):
            props.append(self._one(name, by_name.get(name, [])))
        return props, differences

    def _added_since(self) -> list[str]:
        """Set live, absent from the target: the target is a full read-back, so a value AWS
        reports now but did not then was added since (not a server default): remove it."""
        assert self.target is not None and self.live is not None
        skipped = self.read_only | _top(self.schema.write_only)
        return [
            name
            for name, value in self.live.items()
            if name not in self.target and name not in skipped and not is_vacuous(value)
        ]

    def _one(self, name: str, found: list[PropertyDifference]) -> PropertyPlan:
        target, live = self.target.get(name) if self.target else None, self.live_value(name)
        shown = dict(target=target, live=live)
        if name in self.read_only:
            return PropertyPlan(name, "ignored", "read-only: AWS sets it", **shown)
        if not found:
            if contains_redacted(target) and target != self.current.get(name):
                return PropertyPlan(
                    name, "unrecoverable", "write-only or secret: only a fingerprint is kept",
                    **shown,
                )  # fmt: skip
            if self.target is not None and name not in self.target:
                return PropertyPlan(name, "unchanged", "not recorded then; left as it is", **shown)
            return PropertyPlan(name, "unchanged", "already as recorded", **shown)
        paths = [tuple(split_pointer(d.path)) for d in found]
        if any(_under(p, c) for p in paths for c in self.create_only):
            return PropertyPlan(name, "replace", "create-only: an update cannot change it", **shown)
        if any(contains_redacted(d.expected) for d in found):
            return PropertyPlan(
                name, "unrecoverable", "a secret: only a fingerprint is kept", **shown
            )
        return PropertyPlan(name, "patch", "differs: an update restores it", **shown)

    def live_value(self, name: str) -> Any:
        return self.shown_live.get(name)

    def _for_create(self) -> list[PropertyPlan]:
        assert self.target is not None
        props = []
        for name in sorted(self.target):
            value = self.target[name]
            if name in self.read_only:
                props.append(PropertyPlan(name, "ignored", "read-only: AWS sets it", value))
            elif contains_redacted(value):
                props.append(_lost(PropertyPlan(name, "create", "", value)))
            else:
                props.append(PropertyPlan(name, "create", "set on the new resource", value))
        return props

    def _create_properties(self, props: list[PropertyPlan]) -> dict[str, Any]:
        assert self.target is not None
        settable = {p.name for p in props if p.action not in ("ignored", "unrecoverable")}
        return {k: _without_fingerprints(v) for k, v in self.target.items() if k in settable}

    def _all(self, action: PropertyAction, reason: str) -> list[PropertyPlan]:
        live = self.shown_live
        return [PropertyPlan(k, action, reason, None, live.get(k)) for k in sorted(self.live or {})]


# --------------------------------------------------------------------------- helpers


def recorded_hash(token: str) -> str:
    """The lineage key of a token: ``sha256:<hex>`` as recorded, from the token itself or from
    its recorded form (a tool result's ``execution_token``)."""
    from ccstate.service.authz.tokens import recorded_token_id

    if not isinstance(token, str) or not token.strip():
        raise InvalidInput(
            "Name the change to roll back to: an execution token, or its recorded "
            "'sha256:<hex>' from the resource's history.",
            next_step="Read the resource's history (${history}) and pick an execution_token.",
            field="execution_token",
        )
    token = token.strip()
    found = _HEX.fullmatch(token)
    if found:
        return "sha256:" + found.group(2) + (found.group(3) or "")
    return recorded_token_id(token)


def schema_version(schema: ResourceSchema) -> str:
    return "sha256:" + sha256_hex(canonical_json(schema.raw or {"typeName": schema.type_name}))[:16]


def _direction(to: str) -> Direction:
    if to not in ("after", "before"):
        raise InvalidInput(
            f"to must be 'after' or 'before', not {to!r}.",
            next_step="Use to='after' (the properties the change left) or to='before'.",
            field="to",
        )
    return to  # type: ignore[return-value]


def _entry_for(history: list[LineageEntry], wanted: str, identifier: str) -> LineageEntry:
    for entry in reversed(history):
        if entry.execution_token == wanted and entry.outcome != "FAILED":
            return entry
    known = [
        f"{e.execution_token} ({e.operation}, serial {e.serial})"
        for e in history
        if e.execution_token and e.outcome != "FAILED"
    ]
    raise NotFound(
        f"No successful change of '{identifier}' was made with token {wanted}.",
        next_step="Pick one of the resource's recorded execution tokens"
        + (f": {', '.join(known[-5:])}." if known else " (${history})."),
        field="execution_token",
    )


def _name(d: PropertyDifference) -> str:
    return (split_pointer(d.path) or [""])[0]


def _under(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """``path`` and the create-only ``pattern`` overlap: one lies inside the other (``*``
    matches any segment), so changing ``path`` changes a create-only value."""
    return all(a == b or "*" in (a, b) for a, b in zip(path, pattern, strict=False))


def _top(paths: Collection[str]) -> frozenset[str]:
    return frozenset(p.strip("/") for p in paths if p.count("/") == 1)


def _lost(prop: PropertyPlan) -> PropertyPlan:
    reason = "write-only or secret: only a fingerprint is kept, so it cannot be set again"
    return replace(prop, action="unrecoverable", reason=reason)


def _without_fingerprints(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_fingerprints(v) for k, v in value.items() if not contains_redacted(v)}
    if isinstance(value, list):
        return [_without_fingerprints(v) for v in value if not contains_redacted(v)]
    return value


def live_moved(before: str, now: str) -> str:
    if before == ABSENT:
        return "the resource now exists in AWS (the plan saw none)"
    if now == ABSENT:
        return "the resource no longer exists in AWS"
    return "the live properties changed"
