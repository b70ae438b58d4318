"""What a change would do before it is made: ``analyze_change_impact``.

For a generated or explained token, or a proposed change (create properties, update patch,
delete), the analysis says, deterministically:

- per property: ``update`` or ``replace`` (create-only, from the schema), or ``create`` /
  ``delete`` for the whole resource; never "conditional" (CloudFormation's weak spot): a
  create-only path the change touches is a replacement, whatever the provider might manage;
- the dependents (direct and transitive, from the dependency graph) that hold a value the
  change would break: a replaced key's ARN, a deleted queue's URL;
- the drift the change would overwrite (the live read against the recorded properties);
- the stacks the resource belongs to; the security scan before and after (the delta);
- a risk level with its reasons.

The analysis is bound to a plan digest: operation, resource, exact properties or patch, state
serial of the resource, live-properties digest, schema version. ``ImpactAnalyzer.guard`` is
registered with the executor: executing the analysed change after any of them changed is
refused as stale, also when there was no prior state (the digest binds "absent" too; Terraform
skips that check). The binding is kept in this process (see docs/rollback.md for the limit).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import TokenRecord, TokenService, payload_digest
from ccstate.service.changes.redaction import load_salt, matches_fingerprint
from ccstate.service.changes.rollback import (
    ABSENT,
    StalePlan,
    live_moved,
    schema_version,
)
from ccstate.service.changes.scanning import ScanResult, SecurityScanner
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.tagging import with_default_tags
from ccstate.service.changes.validation import (
    apply_patch,
    validate_patch,
    validate_properties,
    validate_type_name,
)
from ccstate.service.changes.workflow import primary_identifier
from ccstate.service.drift.compare import Comparer
from ccstate.service.drift.rules import split_pointer
from ccstate.service.errors import InvalidInput, NotFound
from ccstate.service.names import validate_identifier
from ccstate.service.ports import CloudProvider, SchemaProvider
from ccstate.service.state.model import canonical_json, sha256_hex
from ccstate.service.state.store import StateStore

Verdict = Literal["create", "update", "replace", "delete", "unchanged"]
Risk = Literal["low", "medium", "high", "critical"]
RISKS: tuple[Risk, ...] = ("low", "medium", "high", "critical")
ANALYSABLE = ("generated_code", "explained")
MAX_BOUND = 10_000  # analyses kept for the stale check, per server process
GraphLoader = Callable[[Any, SchemaProvider], Any]  # (resources, schemas) -> DependencyGraph


@dataclass(frozen=True)
class PropertyImpact:
    name: str
    verdict: Verdict
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"property": self.name, "verdict": self.verdict, "reason": self.reason}


@dataclass(frozen=True)
class DependentImpact:
    identifier: str
    resource_type: str
    depth: int  # 1: depends on the resource itself; 2+: through ``through``
    through: str
    via: str  # the JSON pointer in the dependent that holds the value
    attribute: str  # what of the dependency that value is (identifier, /Arn, /QueueUrl...)
    breaks: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ChangeBinding:
    """What an analysis was computed from; its digest is the plan digest."""

    operation: str
    resource_type: str
    identifier: str
    payload_digest: str
    state_serial: int
    in_state: bool
    live_digest: str
    schema_version: str

    def digest(self) -> str:
        return "sha256:" + sha256_hex(canonical_json(self.__dict__))

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.operation, self.resource_type, self.identifier, self.payload_digest)

    def changed_since(self, earlier: ChangeBinding) -> list[str]:
        moved = []
        if (self.state_serial, self.in_state) != (earlier.state_serial, earlier.in_state):
            moved.append(
                f"the state of the resource moved (serial {earlier.state_serial} -> "
                f"{self.state_serial})"
            )
        if self.live_digest != earlier.live_digest:
            moved.append(live_moved(earlier.live_digest, self.live_digest))
        if self.schema_version != earlier.schema_version:
            moved.append("the resource type's schema changed")
        return moved


@dataclass(frozen=True)
class ImpactReport:
    operation: str
    resource_type: str
    identifier: str
    verdict: Verdict
    properties: list[PropertyImpact]
    dependents: list[DependentImpact]
    drift_overwritten: list[dict[str, Any]]
    stacks: list[str]
    scan: dict[str, Any]
    risk: Risk
    reasons: list[str]
    binding: ChangeBinding

    @property
    def plan_digest(self) -> str:
        return self.binding.digest()

    def breaking(self) -> list[DependentImpact]:
        return [d for d in self.dependents if d.breaks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "resource_type": self.resource_type,
            "identifier": self.identifier,
            "verdict": self.verdict,
            "properties": [p.to_dict() for p in self.properties],
            "dependents": [d.to_dict() for d in self.dependents],
            "drift_overwritten": self.drift_overwritten,
            "stacks": self.stacks,
            "scan_delta": self.scan,
            "risk": self.risk,
            "reasons": self.reasons,
            "plan_digest": self.plan_digest,
            "bound_to": {
                "state_serial": self.binding.state_serial,
                "in_state": self.binding.in_state,
                "live_properties": self.binding.live_digest,
                "schema_version": self.binding.schema_version,
                "payload": self.binding.payload_digest,
            },
        }


@dataclass
class _Proposal:
    operation: str
    schema: ResourceSchema
    identifier: str
    payload: Any
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    changed: list[str] = field(default_factory=list)


class ImpactAnalyzer:
    """Holds no principal; the token path validates the token for the request's principal."""

    def __init__(
        self,
        store: StateStore,
        cloud: CloudProvider,
        schemas: SchemaProvider,
        tokens: TokenService,
        scanner: SecurityScanner,
        *,
        redact: Callable[[ResourceSchema, dict[str, Any]], dict[str, Any]],
        load_graph: GraphLoader,
        default_tags: bool = True,
        salt: bytes | None = None,
    ) -> None:
        self.store = store
        self.cloud = cloud
        self.schemas = schemas
        self.tokens = tokens
        self.scanner = scanner
        self.redact = redact
        self.load_graph = load_graph
        self.default_tags = default_tags
        self._salt = salt
        # The analyses not yet executed, newest last; the oldest go beyond MAX_BOUND.
        self._bound: OrderedDict[tuple[str, str, str, str], ChangeBinding] = OrderedDict()

    # ------------------------------------------------------------------ entry points

    async def analyze_token(self, principal: Principal, token: str) -> ImpactReport:
        """The change a generated_code or explained token authorizes."""
        found = await self.tokens.inspect(token)
        if found.type not in ANALYSABLE:
            raise InvalidInput(
                f"A {found.type} token names no change to analyse.",
                next_step="Pass the generated_code_token from ${prepare} or the "
                "explained_token from ${explain}.",
                field="token",
            )
        record = await self.tokens.validate(
            token,
            expected_type=found.type,
            principal=principal.for_token(),  # type: ignore[arg-type]
        )
        schema = await self.schemas.get_schema(record.resource_type or "")
        proposal = _Proposal(
            record.operation or "", schema, record.identifier or "", record.payload
        )
        return await self._analyze(proposal)

    async def analyze(
        self,
        *,
        operation: str,
        resource_type: str,
        identifier: str = "",
        properties: dict[str, Any] | None = None,
        patch: list[dict[str, Any]] | None = None,
    ) -> ImpactReport:
        """A proposed change, normalised as ``generate`` would (validation, default tags), so
        executing the same change later is recognised."""
        validate_type_name(resource_type)
        schema = await self.schemas.get_schema(resource_type)
        if operation == "create":
            desired = validate_properties(schema, properties or {})
            if self.default_tags:
                desired = with_default_tags(schema, desired)
            ident = primary_identifier(schema, desired) or ""
            return await self._analyze(_Proposal("create", schema, ident, desired))
        if operation not in ("update", "delete"):
            raise InvalidInput(
                f"Unknown operation {operation!r}.",
                next_step="Use operation 'create', 'update' or 'delete'.",
                field="operation",
            )
        identifier = validate_identifier(identifier)
        payload = _patch_to_analyse(schema, patch) if operation == "update" else None
        return await self._analyze(_Proposal(operation, schema, identifier, payload))

    async def guard(self, record: TokenRecord) -> None:
        """Registered with the executor: refuse a change analysed here whose bindings moved."""
        key = (
            record.operation or "",
            record.resource_type or "",
            record.identifier or "",
            record.payload_digest or "",
        )
        earlier = self._bound.pop(key, None)
        if earlier is None:
            return
        schema = await self.schemas.get_schema(earlier.resource_type)
        now = await self._binding(
            earlier.operation, schema, earlier.identifier, earlier.payload_digest
        )
        moved = now.changed_since(earlier)
        if moved:
            raise StalePlan(
                f"The {earlier.operation} of {earlier.resource_type} "
                f"'{earlier.identifier or '(new)'}' was analysed against another state: "
                + "; ".join(moved)
                + ". Nothing was changed.",
                next_step="Analyse the change again, show the new impact to the user, and "
                "prepare it again with ${prepare}.",
                moved=moved,
            )

    # ------------------------------------------------------------------ the analysis

    async def _analyze(self, p: _Proposal) -> ImpactReport:
        schema = p.schema
        live = await self._live(schema, p.identifier)
        if p.operation in ("update", "delete") and live is None:
            raise NotFound(
                f"{schema.type_name} '{p.identifier}' does not exist in AWS.",
                next_step="Check the identifier with ${get_resource}.",
            )
        p.before = live
        p.after = _after(p, live)
        props = self._properties(p)
        verdict = _verdict(p.operation, props)
        view = await self.store.current()
        dependents = await self._dependents(view.resources, p, verdict)
        drift = await self._drift(schema, p, verdict)
        stacks = sorted(n for n, s in view.stacks.items() if p.identifier in s.resources)
        scan = await self._scan_delta(schema, p)
        binding = await self._binding(p.operation, schema, p.identifier, _digest(p.payload))
        self._bound.pop(binding.key, None)
        self._bound[binding.key] = binding
        while len(self._bound) > MAX_BOUND:
            self._bound.popitem(last=False)
        risk, reasons = _risk(p, verdict, dependents, drift, stacks, scan)
        return ImpactReport(
            p.operation, schema.type_name, p.identifier, verdict, props, dependents, drift,
            stacks, scan, risk, reasons, binding,
        )  # fmt: skip

    def _properties(self, p: _Proposal) -> list[PropertyImpact]:
        if p.operation == "create":
            return [
                PropertyImpact(n, "create", "set on the new resource")
                for n in sorted(p.after or {})
            ]
        if p.operation == "delete":
            return [
                PropertyImpact(n, "delete", "the resource is deleted")
                for n in sorted(p.before or {})
            ]
        create_only = [tuple(split_pointer(c)) for c in p.schema.create_only]
        touched = [tuple(split_pointer(op["path"])) for op in p.payload or []]
        out = []
        for name in _changed(p.before or {}, p.after or {}):
            paths = [t for t in touched if t[:1] == (name,)] or [(name,)]
            if any(_overlaps(t, c) for t in paths for c in create_only):
                out.append(
                    PropertyImpact(name, "replace", "create-only: AWS replaces the resource")
                )
            else:
                out.append(PropertyImpact(name, "update", "updated in place"))
        p.changed = [i.name for i in out]
        return out

    async def _dependents(
        self, resources: Any, p: _Proposal, verdict: Verdict
    ) -> list[DependentImpact]:
        if not p.identifier or p.identifier not in resources:
            return []
        graph = await self.load_graph(resources, self.schemas)
        found: list[DependentImpact] = []
        seen = {p.identifier}
        frontier = [(p.identifier, 1)]
        while frontier:
            current, depth = frontier.pop(0)
            for edge in graph.incoming(current):
                if edge.dependent in seen:
                    continue
                seen.add(edge.dependent)
                node = graph.node(edge.dependent)
                breaks, reason = _breaks(edge, p, verdict, depth)
                found.append(
                    DependentImpact(
                        edge.dependent,
                        node.resource_type if node else "",
                        depth,
                        current,
                        edge.via,
                        edge.attribute,
                        breaks,
                        reason,
                    )
                )
                frontier.append((edge.dependent, depth + 1))
        return found

    async def _drift(
        self, schema: ResourceSchema, p: _Proposal, verdict: Verdict
    ) -> list[dict[str, Any]]:
        recorded = await self.store.get_resource(p.identifier) if p.identifier else None
        if recorded is None or p.before is None:
            return []
        differences = (await self._comparer(schema)).compare(recorded.current_properties, p.before)
        wiped = verdict in ("replace", "delete")
        changed = set(p.changed)
        lost = "replaced or deleted" if wiped else "overwritten"
        return [
            {"path": d.path, "recorded": d.expected, "live": self._hidden(schema, d.actual),
             "lost": lost}
            for d in differences
            if wiped or (split_pointer(d.path) or [""])[0] in changed
        ]  # fmt: skip

    def _hidden(self, schema: ResourceSchema, value: Any) -> Any:
        return self.redact(schema, {"value": value})["value"]

    async def _scan_delta(self, schema: ResourceSchema, p: _Proposal) -> dict[str, Any]:
        before = await self._scan(schema, p.before) if p.before is not None else None
        after = await self._scan(schema, p.after) if p.after is not None else None
        ids_before = _failed_ids(before)
        ids_after = _failed_ids(after)
        return {
            "before": before.summary() if before else None,
            "after": after.summary() if after else None,
            "status": (after or before).status if (after or before) else "NOT_APPLICABLE",
            "new_failures": sorted(ids_after - ids_before),
            "fixed": sorted(ids_before - ids_after),
        }

    async def _scan(self, schema: ResourceSchema, properties: dict[str, Any]) -> ScanResult:
        read_only = {r.strip("/") for r in schema.read_only if r.count("/") == 1}
        settable = {k: v for k, v in properties.items() if k not in read_only}
        return await self.scanner.scan(schema.type_name, settable)

    # ------------------------------------------------------------------ bindings

    async def _binding(
        self, operation: str, schema: ResourceSchema, identifier: str, digest: str
    ) -> ChangeBinding:
        view = await self.store.current()
        last = view.last_touched.get(identifier, 0) if identifier else 0
        in_state = bool(identifier) and identifier in view.resources
        live = await self._live(schema, identifier)
        return ChangeBinding(
            operation=operation,
            resource_type=schema.type_name,
            identifier=identifier,
            payload_digest=digest,
            state_serial=last,
            in_state=in_state,
            live_digest=ABSENT
            if live is None
            else "sha256:" + sha256_hex(canonical_json(self.redact(schema, live))),
            schema_version=schema_version(schema),
        )

    async def _live(self, schema: ResourceSchema, identifier: str) -> dict[str, Any] | None:
        if not identifier:
            return None
        try:
            return (await self.cloud.get_resource(schema.type_name, identifier)).properties
        except NotFound:
            return None

    async def _comparer(self, schema: ResourceSchema) -> Comparer:
        if self._salt is None:
            self._salt = await load_salt(self.store.objects, self.store.workspace)
        salt = self._salt

        def matcher(recorded: str, value: Any) -> bool:
            return matches_fingerprint(value, recorded, salt)

        return Comparer(schema, matcher=matcher)


# --------------------------------------------------------------------------- pure helpers


def _patch_to_analyse(schema: ResourceSchema, patch: Any) -> list[dict[str, Any]]:
    """A well-formed patch; one that touches a create-only property is analysed (as a
    replacement), though ``generate`` refuses to prepare it as an update."""
    try:
        return validate_patch(schema, patch)
    except InvalidInput as exc:
        if "a create-only property" not in exc.message:
            raise
        return list(patch)


def _after(p: _Proposal, live: dict[str, Any] | None) -> dict[str, Any] | None:
    if p.operation == "create":
        return dict(p.payload or {})
    if p.operation == "update":
        return apply_patch(live or {}, p.payload or [])
    return None


def _changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(
        name
        for name in set(before) | set(after)
        if canonical_json(before.get(name)) != canonical_json(after.get(name))
    )


def _overlaps(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """One lies inside the other (``*`` matches any segment)."""
    return all(a == "*" or b == "*" or a == b for a, b in zip(path, pattern, strict=False))


def _verdict(operation: str, props: list[PropertyImpact]) -> Verdict:
    if operation in ("create", "delete"):
        return operation  # type: ignore[return-value]
    if any(p.verdict == "replace" for p in props):
        return "replace"
    return "update" if props else "unchanged"


def _breaks(edge: Any, p: _Proposal, verdict: Verdict, depth: int) -> tuple[bool, str]:
    what = "its identifier" if edge.attribute == "identifier" else edge.attribute
    held = f"holds {what} at {edge.via}"
    if depth > 1:
        return False, f"depends on a resource that depends on {p.identifier}: affected, not broken"
    if verdict == "delete":
        return True, f"{held}: the resource is deleted"
    if verdict == "replace":
        return True, f"{held}: a replacement gets a new identity"
    name = edge.attribute.strip("/").split("/")[0]
    if verdict == "update" and name in p.changed:
        return True, f"{held}: the update changes it"
    return False, f"{held}: the {verdict} leaves it as it is"


def _failed_ids(result: ScanResult | None) -> set[str]:
    if result is None:
        return set()
    return {str(c.get("id")) for c in result.failed_checks}


def _digest(payload: Any) -> str:
    return payload_digest(payload) if payload is not None else ""


def _risk(
    p: _Proposal,
    verdict: Verdict,
    dependents: list[DependentImpact],
    drift: list[dict[str, Any]],
    stacks: list[str],
    scan: dict[str, Any],
) -> tuple[Risk, list[str]]:
    found: list[tuple[Risk, str]] = []
    breaking = [d.identifier for d in dependents if d.breaks]
    affected = [d.identifier for d in dependents if not d.breaks and d.depth > 1]
    if breaking:
        found.append(
            ("critical", f"{verdict} breaks {len(breaking)} dependent(s): {', '.join(breaking)}")
        )
    if affected:
        found.append(("high", f"{len(affected)} more depend on them: {', '.join(affected)}"))
    if verdict in ("replace", "delete"):
        found.append(
            ("high", f"the resource is {'replaced' if verdict == 'replace' else 'deleted'}")
        )
    if scan["new_failures"]:
        found.append(("high", f"new failed security checks: {', '.join(scan['new_failures'])}"))
    if drift:
        found.append(("medium", f"overwrites {len(drift)} drifted value(s) made outside ccstate"))
    if stacks:
        found.append(("medium", f"member of stack(s) {', '.join(stacks)}"))
    if not found:
        found.append(("low", f"{verdict} in place; no dependent holds what changes"))
    level = max((r for r, _ in found), key=RISKS.index)
    return level, [reason for _, reason in found]
