"""One token for a stack's whole plan, and the authority its steps run under.

A stack operation (create, update, rollback, destroy) is explained and scanned as a whole
(``scan_plan_results``: references to resources not yet created scanned as placeholders), and
one ``stack_plan`` token (``authz.tokens``) binds the principal, the stack, the plan's exact
document (every action with its unresolved properties) and the region, sealed and single use.
The operation uses it once, under the stack's lock, when it starts; from then on each
resource's step runs under a ``PlanAuthority``: an in-process object, never handed out, that
checks the step belongs to the plan (the resolved properties are the plan's with the
references substituted) and gives the executor an ``Authorization`` that records the plan
token (``sha256:<plan>#<logical>/<step>``) in the step's intent and lineage entry. See
docs/decisions.md "Stack plan token".
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import (
    IssuedToken,
    TokenRecord,
    payload_digest,
    recorded_token_id,
)
from ccstate.service.changes.scanning import ScanResult
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.workflow import Authorization, Workflow, primary_identifier
from ccstate.service.errors import PolicyDenied, TokenError
from ccstate.service.stacks.template import Created, StackTemplate

PLACEHOLDER = "ccstate-unresolved:"  # a reference scanned before what it names exists
TOKEN_OPERATIONS = {
    "create": "create-stack",
    "update": "update-stack",
    "undo": "update-stack",  # the rollback of an update that stopped (rollback off)
    "destroy": "destroy-stack",
}
_NEXT = (
    "Preview the stack's plan again (${stack_plan}), show it to the user, and pass the new "
    "plan_token."
)


@dataclass(frozen=True)
class PlanScan:
    """The plan-wide scan: each resource's result, and which were scanned with placeholders
    (re-scanned, resolved, just before their step)."""

    note: str = ""
    results: dict[str, ScanResult] = field(default_factory=dict)
    deferred: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "note": self.note,
            "results": {n: r.to_dict() for n, r in self.results.items()},
            "deferred": sorted(self.deferred),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanScan:
        return cls(
            str(data.get("note", "")),
            {n: ScanResult.from_dict(r) for n, r in (data.get("results") or {}).items()},
            frozenset(data.get("deferred") or ()),
        )

    @property
    def status(self) -> str:
        statuses = sorted({r.status for r in self.results.values()})
        return "/".join(statuses) or "NOT_APPLICABLE"


@dataclass(frozen=True)
class StackPlan:
    """What one token authorizes: ``document`` is bound by its digest."""

    stack: str
    operation: str  # create | update | undo | destroy
    document: dict[str, Any]
    explanation: str
    scan: PlanScan = field(default_factory=PlanScan)

    @property
    def digest(self) -> str:
        return payload_digest(self.document)

    def payload(self) -> dict[str, Any]:
        return {"plan": self.document, "scan": self.scan.to_json()}

    def actions(self) -> list[dict[str, Any]]:
        """Every action, in the plan's order, as the faces show them."""
        return [
            {"logical_id": n, **{k: v for k, v in a.items() if k != "logical_id"}}
            for n, a in (self.document.get("actions") or {}).items()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack_name": self.stack,
            "operation": self.operation,
            "explanation": self.explanation,
            "actions": self.actions(),
            "security_scan": {
                "status": self.scan.status,
                "summary": self.scan.note,
                "resources": {n: r.summary() for n, r in sorted(self.scan.results.items())},
                "rescanned_resolved": sorted(self.scan.deferred),
            },
            "plan_digest": self.digest,
        }


def create_document(stack: str, template: StackTemplate) -> dict[str, Any]:
    return {
        "stack": stack,
        "operation": "create",
        "resources": template.to_json(),
        "actions": {
            n: {"action": "create", "resource_type": template.resources[n].resource_type}
            for n in template.order()
        },
    }


def update_document(
    stack: str,
    template: StackTemplate,
    actions: Mapping[str, Any],
    stopped: Mapping[str, list[str]] | None = None,
) -> dict:
    """``actions``: the update plan's, as ``PlannedAction.to_dict`` (identifiers included, so
    a token is for the stack as it was deployed when the plan was explained). ``stopped``: for
    an update that continues one that stopped (rollback off), what that one touched, per
    logical name (``stopped_resources``): its undo and its cleanup are part of this plan."""
    document = {
        "stack": stack,
        "operation": "update",
        "resources": template.to_json(),
        "actions": {n: a for n, a in actions.items()},
    }
    if stopped:
        document["continues"] = {n: list(ids) for n, ids in sorted(stopped.items())}
    return document


def stopped_resources(update: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per logical name, the resources a stopped update touched: what its steps patched or
    made (its undo) and the old ones it replaced (its cleanup, once continued to the end)."""
    found: dict[str, set[str]] = {}
    for step in update.get("steps", []):
        identifier = step.get("identifier") if step["action"] == "update" else step.get("made")
        if identifier:
            found.setdefault(step["logical"], set()).add(identifier)
    for entry in update.get("retired", []):
        found.setdefault(entry["logical"], set()).add(entry["identifier"])
    return {n: sorted(ids) for n, ids in sorted(found.items())}


def undo_document(stack: str, steps: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The rollback of a stopped update: its journal's steps, undone in reverse; per logical
    name, the resources the undo may patch back or delete."""
    stopped = stopped_resources({"steps": steps})
    return {
        "stack": stack,
        "operation": "undo",
        "steps": [
            {k: s[k] for k in ("logical", "action", "type", "identifier", "made") if k in s}
            for s in reversed(steps)
        ],
        "actions": {
            n: {"action": "undo", "resource_type": t, "identifiers": stopped.get(n, [])}
            for n, t in {s["logical"]: s["type"] for s in steps}.items()
        },
    }


def destroy_document(stack: str, created: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    return {
        "stack": stack,
        "operation": "destroy",
        "actions": {
            n: {"action": "delete", "resource_type": c["type"], "identifier": c["identifier"]}
            for n, c in sorted(created.items())
        },
    }


class StackPlans:
    """Issue a plan's token, and use one to get the authority the plan's steps run under."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow

    async def issue(self, principal: Principal, plan: StackPlan, user_intent: str) -> IssuedToken:
        return await self.workflow.tokens.issue(
            "stack_plan",
            principal=principal.for_token(),
            operation=TOKEN_OPERATIONS[plan.operation],
            identifier=plan.stack,
            payload=plan.payload(),
            explanation=plan.explanation,
            user_intent=user_intent or None,
            region=await self.workflow.region_for(None),
        )

    async def use(self, principal: Principal, plan: StackPlan, token: str) -> PlanAuthority:
        """Check ``token`` is for exactly ``plan`` (computed now, from the stack as it is), for
        this principal and region, then mark it used: once, across every server."""
        try:
            record = await self.workflow.tokens.consume(
                token,
                expected_type="stack_plan",
                principal=principal.for_token(),
                operation=TOKEN_OPERATIONS[plan.operation],
                identifier=plan.stack,
                payload_digest=plan.digest,
                region=await self.workflow.region_for(None),
            )
        except TokenError as exc:
            raise _for_plans(exc, plan) from exc
        payload = record.payload or {}
        scan = PlanScan.from_json(payload.get("scan") or {})
        return PlanAuthority(self.workflow, plan.stack, recorded_token_id(token), record, scan)

    async def authorize(
        self, principal: Principal, plan: StackPlan, token: str | None, user_intent: str
    ) -> PlanAuthority:
        """The given token, or (none given: the CLI, or a caller that explained nothing) one
        issued for the plan explained and scanned in this call and used at once, so every
        stack operation records exactly one plan token."""
        if token is None:
            token = (await self.issue(principal, plan, user_intent)).token
        return await self.use(principal, plan, token)


def _for_plans(exc: TokenError, plan: StackPlan) -> TokenError:
    check = exc.details.get("check", "")
    message = exc.message
    if check in ("payload_mismatch", "wrong_resource", "wrong_operation"):
        message = (
            f"This plan token is for another plan than this {plan.operation} of stack "
            f"'{plan.stack}' (other resources, properties or stack, or the stack changed "
            "since it was explained)."
        )
    elif check == "consumed":
        message = "This plan token was already used: a plan token deploys one plan, once."
    elif check == "wrong_type":
        message = "A stack needs a plan token from its preview; this is another kind of token."
    return TokenError(message, next_step=_NEXT, step="stack_plan", check=check)


class PlanAuthority:
    """The used plan token, as its steps need it. ``record`` is None when recovering: the dead
    process used the token; the journal names it."""

    def __init__(
        self,
        workflow: Workflow,
        stack: str,
        plan_id: str,
        record: TokenRecord | None,
        scan: PlanScan | None = None,
    ) -> None:
        self.workflow = workflow
        self.stack = stack
        self.plan_id = plan_id  # "sha256:<hash of the plan token>", as the stack records it
        self.record = record
        self.scan = scan or PlanScan()
        payload = (record.payload if record is not None else None) or {}
        self.document: dict[str, Any] = payload.get("plan") or {}

    @property
    def explanation(self) -> str:
        """The plan's explanation, as it was shown when the token was issued."""
        return self.record.explanation or "" if self.record is not None else ""

    @classmethod
    def recovering(cls, workflow: Workflow, stack: str, plan_id: str) -> PlanAuthority:
        return cls(workflow, stack, plan_id, None)

    # ------------------------------------------------------------------ steps

    async def create(
        self,
        principal: Principal,
        logical: str,
        schema: ResourceSchema,
        properties: dict[str, Any],
        outputs: Mapping[str, Created],
        user_intent: str,
    ) -> Authorization:
        """A create (or a replacement's new resource) of the plan, with these resolved
        properties; re-scanned first when the plan scanned it with placeholders."""
        self.workflow.policy.check(principal, "create")
        desired = self.workflow.desired_for_create(schema, properties)  # the schema check
        self._check_resolved(logical, schema, desired, outputs)
        checkov = await self._scanned(logical, schema, desired)
        return self._step(
            principal,
            logical,
            "create",
            schema.type_name,
            primary_identifier(schema, desired),
            desired,
            checkov,
            user_intent,
        )

    async def update(
        self,
        principal: Principal,
        logical: str,
        schema: ResourceSchema,
        identifier: str,
        patch: list[dict[str, Any]],
        after: dict[str, Any] | None,
        outputs: Mapping[str, Created],
        user_intent: str,
    ) -> Authorization:
        """An in-place update of the plan (``after``: the rendered properties it leads to), or,
        with ``after`` None, an undo: back to the properties read before the update."""
        self.workflow.policy.check(principal, "update")
        if after is None:
            self._check_known(logical, identifier, undo=True)
            checkov = {
                "status": "NOT_APPLICABLE",
                "reason": "undoes this plan's update: back to the properties read before it",
            }
            return self._step(
                principal, logical, "undo", schema.type_name, identifier, patch, checkov,
                user_intent, operation="update",
            )  # fmt: skip
        self._check_known(logical, identifier)
        self._check_resolved(logical, schema, after, outputs)
        checkov = await self._scanned(logical, schema, after)
        return self._step(
            principal, logical, "update", schema.type_name, identifier, patch, checkov,
            user_intent,
        )  # fmt: skip

    def delete(
        self, principal: Principal, logical: str, resource_type: str, identifier: str, why: str,
        user_intent: str,
    ) -> Authorization:  # fmt: skip
        """A delete: destroying, rolling this plan's creates back, or an update's cleanup."""
        self.workflow.policy.check(principal, "delete")
        self._check_known(logical, identifier, undo=why != "delete")
        checkov = {"status": "NOT_APPLICABLE", "reason": "a delete has nothing to scan"}
        return self._step(
            principal, logical, why, resource_type, identifier, None, checkov, user_intent,
            operation="delete",
        )  # fmt: skip

    # ------------------------------------------------------------------ checks

    def _action(self, logical: str) -> Mapping[str, Any]:
        action = (self.document.get("actions") or {}).get(logical)
        if action is None:
            raise _not_in_plan(self.stack, logical, "it is not in the plan")
        return action

    def _check_known(self, logical: str, identifier: str, *, undo: bool = False) -> None:
        """An identifier-bound step: the plan names this resource. An undo or a rollback
        delete may touch what this plan created, whose identifier was not known up front."""
        if self.record is None:
            return  # recovering: the journal of the plan is the authority
        continued = (self.document.get("continues") or {}).get(logical) or []
        if undo and identifier in continued:
            return  # the undo or the cleanup of the stopped update this plan continues
        action = self._action(logical)
        allowed = action.get("identifiers")
        if allowed is not None and identifier not in allowed:
            raise _not_in_plan(self.stack, logical, f"the plan does not name '{identifier}'")
        known = action.get("identifier") or ""
        if known and known != identifier and not undo:
            raise _not_in_plan(self.stack, logical, f"the plan names '{known}', not '{identifier}'")

    def _check_resolved(
        self,
        logical: str,
        schema: ResourceSchema,
        properties: dict[str, Any],
        outputs: Mapping[str, Created],
    ) -> None:
        """The properties are the plan's, with its references substituted by what they name."""
        from ccstate.service.stacks.update import render  # update imports operations, us

        if self.record is None:
            raise _not_in_plan(self.stack, logical, "recovery only deletes and undoes")
        self._action(logical)
        planned = (self.document.get("resources") or {}).get(logical) or {}
        expected = render(
            self.workflow, schema, planned.get("Properties") or {}, outputs, self.stack, logical
        )
        if planned.get("Type") != schema.type_name or payload_digest(expected) != payload_digest(
            properties
        ):
            raise _not_in_plan(
                self.stack, logical, "its resolved properties differ from the plan's"
            )

    async def _scanned(
        self, logical: str, schema: ResourceSchema, properties: dict[str, Any]
    ) -> dict[str, Any]:
        """The plan scan's result for this resource; a resource the plan scanned with
        placeholders is scanned again now, resolved, and refused if that does not pass."""
        planned = self.scan.results.get(logical)
        if logical not in self.scan.deferred and planned is not None:
            return planned.checkov_results()
        result = await self.workflow.scanner.scan(schema.type_name, properties)
        if not result.authorizes_execution:
            raise PolicyDenied(
                f"The security scan of {logical} in stack {self.stack}, with its references "
                f"resolved, did not authorize it: {result.status} ({result.summary()}).",
                next_step="Fix the properties of this resource and deploy the stack again.",
                stack=self.stack,
                failed_checks={logical: result.failed_ids},
            )
        return result.checkov_results()

    # ------------------------------------------------------------------ the authorization

    def _step(
        self,
        principal: Principal,
        logical: str,
        step: str,
        resource_type: str,
        identifier: str | None,
        payload: Any,
        checkov: dict[str, Any],
        user_intent: str,
        *,
        operation: str | None = None,
    ) -> Authorization:
        nonce = secrets.token_hex(3)  # a retried delete or undo is a new request
        recorded = f"{self.plan_id}#{logical}/{step}.{nonce}"
        client = hashlib.sha256(f"{self.plan_id}:{logical}:{step}:{nonce}".encode()).hexdigest()
        base = self.record or _recovery_record(principal, self.stack)
        record = replace(
            base,
            operation=operation or step,
            resource_type=resource_type,
            identifier=identifier,
            payload=payload,
            payload_digest=payload_digest(payload) if payload is not None else None,
            explanation=f"Step {logical} ({step} {resource_type}) of stack {self.stack}'s plan "
            f"{self.plan_id}; the plan's explanation is the stack's lineage entry.",
            user_intent=user_intent or None,
            scan=None,
            sealed_payload=None,
        )
        return Authorization(
            token="",
            record=record,
            checkov_results=checkov,
            region=record.region,
            under_plan=True,
            recorded_id=recorded,
            client_token=client[:64],
        )


def _recovery_record(principal: Principal, stack: str) -> TokenRecord:
    """What a recovery's steps carry: the plan token itself was used by the dead process."""
    now = datetime.now(UTC)
    return TokenRecord(
        token_hash="",
        type="stack_plan",
        principal=principal.for_token(),
        issued_at=now,
        expires_at=now,
        identifier=stack,
    )


def _not_in_plan(stack: str, logical: str, why: str) -> TokenError:
    return TokenError(
        f"Resource {logical} is refused: it is not part of stack {stack}'s plan as explained "
        f"({why}). Nothing was changed for it.",
        next_step=_NEXT,
        step="stack_plan",
        check="payload_mismatch",
    )


# ---------------------------------------------------------------------- the plan-wide scan


async def scan_plan_results(
    workflow: Workflow,
    stack: str,
    template: StackTemplate,
    names: list[str],
    outputs: Mapping[str, Created],
) -> PlanScan:
    """Scan every resource the plan creates or changes, before the first step: references to
    resources not yet created are scanned as placeholders. Refuses the whole plan when any
    scan does not authorize."""
    from ccstate.service.stacks.update import _with_placeholders, render

    if not names:
        return PlanScan()

    async def scan(logical: str) -> tuple[str, ScanResult]:
        res = template.resources[logical]
        schema = await workflow.schemas.get_schema(res.resource_type)
        properties = render(
            workflow, schema, res.properties, outputs, stack, logical, placeholders=True
        )
        return logical, await workflow.scanner.scan(schema.type_name, properties)

    results = dict(await asyncio.gather(*(scan(n) for n in names)))
    refused = {n: r for n, r in results.items() if not r.authorizes_execution}
    if refused:
        raise PolicyDenied(
            f"The security scan of stack {stack}'s plan did not authorize it: "
            + "; ".join(f"{n}: {r.status} ({r.summary()})" for n, r in sorted(refused.items()))
            + ". Nothing was changed.",
            next_step="Fix the properties of these resources (or install the scanner if none "
            "ran) and deploy again.",
            stack=stack,
            failed_checks={n: r.failed_ids for n, r in refused.items()},
        )
    statuses = sorted({r.status for r in results.values()})
    deferred = sorted(
        n
        for n in names
        if any(
            _is_placeholder(v)
            for v in _leaves(_with_placeholders(template.resources[n].properties, outputs))
        )
    )
    note = f"Security scan of the plan: {len(names)} resources, {'/'.join(statuses)}"
    if deferred:
        note += f" (references not yet created scanned as placeholders in {', '.join(deferred)})"
    return PlanScan(note + ".", results, frozenset(deferred))


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PLACEHOLDER)
