"""The stack use cases: create (all or nothing), destroy, recover, and the reads.

The whole plan is explained and scanned once and authorized by one plan token
(``service.stacks.authority``), used when the operation starts; each resource's step then runs
through the executor under that plan's authority (its resource lock, intent, Cloud Control
call and lineage entry, which names the plan token). The stack's own entries record the plan
token (the stack's ``execution_token``), the explanation listing every resource, and the
outcome. See docs/decisions.md "Stacks" and "Stack plan token".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ccstate.service.authz.principal import Principal
from ccstate.service.authz.tokens import IssuedToken
from ccstate.service.changes.runner import ChangeRunner
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.errors import CcstateError, NotFound, StateConflict
from ccstate.service.graph.state import StateGraph
from ccstate.service.stacks.authority import (
    PlanAuthority,
    PlanScan,
    StackPlan,
    StackPlans,
    create_document,
    destroy_document,
    scan_plan_results,
)
from ccstate.service.stacks.journal import Journal, JournalStore, StackEvent
from ccstate.service.stacks.scheduler import reversed_deps, run_dag
from ccstate.service.stacks.template import (
    Created,
    StackTemplate,
    parse_template,
    resolve,
    validate_stack_name,
)
from ccstate.service.state.model import CommitMeta, Stack, StackChange, utc_now_iso
from ccstate.service.state.store import StateStore

log = logging.getLogger(__name__)

STACK_TAG = "ccstate:stack"
LOGICAL_TAG = "ccstate:logical-id"
OnEvent = Callable[[StackEvent], None]


@dataclass(frozen=True)
class StackResult:
    name: str
    status: str
    resources: dict[str, dict[str, str]]  # logical -> {type, identifier}
    events: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    state_serial: int = 0
    next_step: str = ""  # what the user can do now, in ``${word}`` placeholders the faces fill


class StackFailed(CcstateError):
    code = "stack_failed"


class StackOperations:
    def __init__(
        self,
        runner: ChangeRunner,
        store: StateStore,
        journal: JournalStore,
        *,
        concurrency: int = 10,
    ) -> None:
        self.runner = runner
        self.workflow = runner.workflow
        self.operations = runner.operations
        self.store = store
        self.journal = journal
        self.concurrency = concurrency
        self.plans = StackPlans(self.workflow)

    # ------------------------------------------------------------------ create

    async def create(
        self,
        principal: Principal,
        stack_name: str,
        resources: Mapping[str, Any],
        user_intent: str,
        *,
        rollback: bool = True,
        on_event: OnEvent | None = None,
        plan_token: str | None = None,
    ) -> StackResult:
        """``plan_token``: from ``preview``, for exactly this plan; None: the plan is explained
        and scanned here and one token issued and used for it."""
        name = validate_stack_name(stack_name)
        template = parse_template(resources)
        self.workflow.policy.check(principal, "create")
        digest = plan_digest(name, template)
        async with self.operations.locked(principal, stack_lock(name), "create-stack"):
            await self._check_creatable(name)
            plan = await self._create_plan(name, template, user_intent, scan=plan_token is None)
            authority = await self.plans.authorize(principal, plan, plan_token, user_intent)
            journal = Journal(
                stack=name,
                operation="create",
                status="CREATE_IN_PROGRESS",
                template=template.to_json(),
                user_intent=user_intent,
                plan_digest=digest,
                plan_token=authority.plan_id,
                holder_host=socket.gethostname(),
                holder_pid=os.getpid(),
            )
            await self._stack_entry(principal, journal, authority.explanation)
            run = _Run(self, principal, journal, template, on_event, authority)
            result = await run_dag(
                {n: r.depends_on for n, r in template.resources.items()},
                run.create_one,
                limit=self.concurrency,
            )
            unsaved = await run.flush()
            if result.ok and unsaved is None:
                return await self._finish(principal, journal, "CREATE_COMPLETE")
            logical, error = next(iter(result.failed.items()), (journal.stack, unsaved))
            reason = f"{logical}: {_reason(error)}"
            if not rollback:
                return await self._stop_create(principal, journal, reason)
            await self._sweep_pending(journal)
            await self._roll_back(principal, journal, on_event, authority)
            return await self._finish(principal, journal, "ROLLBACK_COMPLETE", reason)

    async def _check_creatable(self, name: str) -> None:
        existing = await self.journal.load(name)
        if existing is not None and existing.status not in ("ROLLBACK_COMPLETE", "DELETE_COMPLETE"):
            raise StateConflict(
                f"Stack '{name}' exists ({existing.status}).",
                next_step="Destroy it first, recover it, or choose another name.",
                resources=[name],
                authors=[],
            )

    async def _stop_create(
        self, principal: Principal, journal: Journal, reason: str
    ) -> StackResult:
        """Rollback off: what exists stays and is recorded (a create the cloud may have made
        without an answer is looked for by the stack's tags), nothing else is claimed."""
        await self._sweep_pending(journal)
        template = parse_template(journal.template)
        missing = [n for n in template.order() if n not in journal.created]
        summary = f"stopped without rolling back: {_names('created', list(journal.created))}"
        summary += f"; {_names('not created', missing)}" if missing else ""
        return await self._finish(
            principal,
            journal,
            "CREATE_FAILED",
            f"{reason} ({summary})",
            next_step=stopped_next_step(journal.stack, "CREATE_FAILED"),
        )

    async def _create_plan(
        self, name: str, template: StackTemplate, intent: str, *, scan: bool = True
    ) -> StackPlan:
        """The create's plan; ``scan``: False when a plan token carries the plan's scan."""
        found = PlanScan()
        if scan:
            found = await scan_plan_results(self.workflow, name, template, template.order(), {})
        explanation = explain_plan(name, template, intent)
        if found.note:
            explanation += f"\n{found.note}"
        return StackPlan(name, "create", create_document(name, template), explanation, found)

    # ------------------------------------------------------------------ preview

    async def preview(
        self,
        principal: Principal,
        stack_name: str,
        resources: Mapping[str, Any] | None,
        user_intent: str,
        *,
        operation: str = "deploy",
    ) -> tuple[StackPlan, IssuedToken | None]:
        """The plan of a ``create``, an ``update`` (``deploy`` picks), a ``rollback`` or a
        ``destroy``,
        explained (every action listed) and scanned, with the one token that authorizes it
        (None when an update changes nothing). Nothing is changed."""
        name = validate_stack_name(stack_name)
        journal = await self.journal.load(name)
        if operation == "destroy":
            journal = await self._existing(name)
            self.workflow.policy.check(principal, "delete")
            _check_destroyable(journal)
            plan = destroy_plan(journal, user_intent)
        elif operation == "create" or (
            operation == "deploy" and (journal is None or journal.status in _CREATABLE)
        ):
            await self._check_creatable(name)
            self.workflow.policy.check(principal, "create")
            plan = await self._create_plan(name, parse_template(resources or {}), user_intent)
        else:
            found = await self._updates().prepare(
                principal, name, resources, user_intent, rollback=operation == "rollback"
            )
            if found is None:
                return StackPlan(name, "update", {}, f"Stack {name}: no changes."), None
            plan = found
        return plan, await self.plans.issue(principal, plan, user_intent)

    # ------------------------------------------------------------------ update (update.py)

    def _updates(self) -> Any:
        from ccstate.service.stacks.update import StackUpdates

        return StackUpdates(self)

    async def update(
        self,
        principal: Principal,
        stack_name: str,
        resources: Mapping[str, Any],
        user_intent: str,
        *,
        rollback: bool = True,
        on_event: OnEvent | None = None,
        plan_token: str | None = None,
    ) -> StackResult:
        """Adds, in-place updates, replacements and removals, all or nothing (``rollback=False``:
        a failure stops the update where it is, ``UPDATE_FAILED``)."""
        return await self._updates().update(
            principal,
            stack_name,
            resources,
            user_intent,
            rollback=rollback,
            on_event=on_event,
            plan_token=plan_token,
        )

    async def deploy(
        self,
        principal: Principal,
        stack_name: str,
        resources: Mapping[str, Any],
        user_intent: str,
        *,
        rollback: bool = True,
        on_event: OnEvent | None = None,
        plan_token: str | None = None,
    ) -> StackResult:
        """Create the stack, or update it if it is deployed."""
        return await self._updates().deploy(
            principal,
            stack_name,
            resources,
            user_intent,
            rollback=rollback,
            on_event=on_event,
            plan_token=plan_token,
        )

    async def plan_update(self, stack_name: str, resources: Mapping[str, Any]) -> Any:
        """What ``update`` would do (an ``UpdatePlan``), without doing it."""
        return await self._updates().plan(stack_name, resources)

    async def rollback(
        self,
        principal: Principal,
        stack_name: str,
        *,
        user_intent: str = "",
        rollback: bool = True,
        on_event: OnEvent | None = None,
        plan_token: str | None = None,
    ) -> StackResult:
        """Back to the template before the last update, applied as an update; an update that
        stopped (``UPDATE_FAILED``) is undone from its journal instead."""
        return await self._updates().rollback(
            principal,
            stack_name,
            user_intent=user_intent,
            rollback=rollback,
            on_event=on_event,
            plan_token=plan_token,
        )

    # ------------------------------------------------------------------ destroy

    async def destroy(
        self,
        principal: Principal,
        stack_name: str,
        *,
        user_intent: str = "",
        on_event: OnEvent | None = None,
        plan_token: str | None = None,
    ) -> StackResult:
        name = validate_stack_name(stack_name)
        self.workflow.policy.check(principal, "delete")
        async with self.operations.locked(principal, stack_lock(name), "destroy-stack"):
            journal = await self._existing(name)
            _check_destroyable(journal)
            await self._refuse_outside_dependents(journal)
            plan = destroy_plan(journal, user_intent)
            authority = await self.plans.authorize(principal, plan, plan_token, user_intent)
            journal.operation = "destroy"
            journal.status = "DELETE_IN_PROGRESS"
            journal.user_intent = user_intent or journal.user_intent
            journal.plan_digest = plan.digest
            journal.plan_token = authority.plan_id
            await self._stack_entry(principal, journal, authority.explanation)
            failed = await self._delete_all(principal, journal, on_event, authority)
            if failed:
                return await self._finish(principal, journal, "DELETE_FAILED", failed)
            return await self._finish(principal, journal, "DELETE_COMPLETE")

    async def _refuse_outside_dependents(self, journal: Journal) -> None:
        view = await self.store.current()
        graph = StateGraph()
        await graph.schemas.ensure({r.resource_type for r in view.resources.values()})
        dependency_graph = await graph.read(view.resources)
        ours = {c["identifier"] for c in journal.created.values()}
        outside = {
            f"{dependent} -> {identifier}"
            for identifier in ours
            if identifier in dependency_graph
            for dependent in dependency_graph.dependents(identifier)
            if dependent not in ours
        }
        if outside:
            raise StateConflict(
                f"Stack '{journal.stack}' cannot be destroyed: resources outside it depend on "
                f"it ({', '.join(sorted(outside))}).",
                next_step="Remove or change those resources first, then destroy the stack.",
                resources=sorted(outside),
                authors=[],
            )

    # ------------------------------------------------------------------ recover

    async def recover(
        self, principal: Principal, stack_name: str, *, on_event: OnEvent | None = None
    ) -> StackResult:
        """Finish an operation whose process died: roll a create or an update back, finish a
        destroy or an update's cleanup."""
        name = validate_stack_name(stack_name)
        self.workflow.policy.check(principal, "delete")
        journal = await self._existing(name)
        if not journal.unfinished:
            return _nothing_to_recover(journal, self._result(journal))
        await self._release_dead_holder(journal)
        async with self.operations.locked(principal, stack_lock(name), "recover-stack"):
            journal = await self._existing(name)
            if journal.operation == "update":
                return await self._updates().recover(principal, journal, on_event)
            await self._sweep_pending(journal)
            if journal.operation == "destroy":
                failed = await self._delete_all(principal, journal, on_event, None)
                status = "DELETE_FAILED" if failed else "DELETE_COMPLETE"
                return await self._finish(principal, journal, status, failed)
            await self._roll_back(principal, journal, on_event, None)
            return await self._finish(
                principal, journal, "ROLLBACK_COMPLETE", "recovered after an interruption"
            )

    async def _release_dead_holder(self, journal: Journal) -> None:
        """The stack lock and the resource locks of a process that died on this host are
        released: that process cannot finish anything (a live or remote holder is waited for)."""
        if journal.holder_host != socket.gethostname() or _alive(journal.holder_pid):
            return
        locks = self.operations.locks
        for lock in await locks.list_locks(self.operations.settings.workspace):
            if lock.host == journal.holder_host and lock.pid == journal.holder_pid:
                log.warning("releasing lock_id=%s of dead process %s", lock.id, lock.pid)
                await locks.force_unlock(lock.id)

    async def _sweep_pending(self, journal: Journal) -> None:
        """A create asked of the cloud whose answer the dead process never recorded: found by
        the stack's tags on the resources of that type."""
        for logical, resource_type in list(journal.pending.items()):
            found = await self._find_tagged(resource_type, journal.stack, logical)
            if found and journal.operation == "create":
                journal.created[logical] = {"type": resource_type, "identifier": found}
                journal.order.append(logical)
            journal.pending.pop(logical)
        await self.journal.save(journal)

    async def _find_tagged(
        self, resource_type: str, stack: str, logical: str, *, exclude: frozenset[str] = frozenset()
    ) -> str | None:
        cloud = self.workflow.cloud
        token: str | None = None
        while True:
            page = await cloud.list_resources(resource_type, next_token=token)
            for item in page.resources:
                if item.identifier in exclude:
                    continue
                props = item.properties
                if "Tags" not in (props or {}):  # a listing may carry only the identifier
                    try:
                        props = (
                            await cloud.get_resource(resource_type, item.identifier)
                        ).properties
                    except NotFound:
                        continue
                if (
                    _tags_of(props).get(STACK_TAG) == stack
                    and _tags_of(props).get(LOGICAL_TAG) == logical
                ):
                    return item.identifier
            token = page.next_token
            if not token:
                return None

    # ------------------------------------------------------------------ reads

    async def list(self) -> list[StackResult]:
        return [
            self._result(j)
            for j in [await self.journal.load(n) for n in await self.journal.names()]
            if j
        ]

    async def show(self, stack_name: str) -> StackResult:
        """The stack with the reason of its last outcome (a failed step's, for a failure)."""
        journal = await self._existing(validate_stack_name(stack_name))
        mine = [e for e in journal.events if e["logical_id"] == journal.stack]
        reason = mine[-1]["reason"] if mine and mine[-1]["status"] == journal.status else ""
        return self._result(
            journal, reason, next_step=stopped_next_step(journal.stack, journal.status)
        )

    # ------------------------------------------------------------------ internals

    async def _existing(self, name: str) -> Journal:
        journal = await self.journal.load(name)
        if journal is None:
            raise NotFound(
                f"No stack '{name}' in this workspace.",
                next_step="List the stacks with ${stack_list}.",
                stack=name,
            )
        return journal

    async def _roll_back(
        self,
        principal: Principal,
        journal: Journal,
        on_event: OnEvent | None,
        authority: PlanAuthority | None,
    ) -> None:
        journal.status = "ROLLBACK_IN_PROGRESS"
        await self.journal.save(journal)
        failed = await self._delete_all(principal, journal, on_event, authority)
        if failed:
            raise StackFailed(
                f"Stack '{journal.stack}' could not be rolled back completely: {failed}.",
                next_step=f"Fix the cause, then run ${{stack_recover}} {journal.stack}.",
                stack=journal.stack,
                left=sorted(journal.created),
            )

    async def _delete_all(
        self,
        principal: Principal,
        journal: Journal,
        on_event: OnEvent | None,
        authority: PlanAuthority | None,
    ) -> str:
        """Delete what the journal says exists, dependents first; '' or why it stopped."""
        template = parse_template(journal.template)
        present = set(journal.created)
        deps = reversed_deps({n: template.resources[n].depends_on for n in template.resources})
        deps = {n: d & present for n, d in deps.items() if n in present}
        run = _Run(self, principal, journal, template, on_event, authority)
        result = await run_dag(deps, run.delete_one, limit=self.concurrency)
        if result.ok:
            return ""
        logical, error = next(iter(result.failed.items()))
        return f"{logical}: {_reason(error)}"

    async def _stack_entry(self, principal: Principal, journal: Journal, explanation: str) -> int:
        await self.journal.save(journal)
        # An update stopped part-way: the replaced resources' old ones exist and belong to it
        # until the update is finished (they are deleted) or rolled back (they stay).
        retired = journal.update.get("retired", []) if journal.status == "UPDATE_FAILED" else []
        stack = Stack(
            execution_token=plan_id(journal),
            resources=[c["identifier"] for c in journal.created.values()]
            + [c["identifier"] for c in retired],
            created_at=utc_now_iso(),
            user_intent=journal.user_intent or None,
            status=journal.status,
        )
        commit = await self.store.commit(
            [],
            CommitMeta(
                principal=principal.to_record(),
                execution_token=stack.execution_token,
                explanation=explanation,
                user_intent=journal.user_intent or None,
            ),
            stacks=[
                StackChange(
                    name=journal.stack, stack=None if journal.status == "DELETE_COMPLETE" else stack
                )
            ],
        )
        return commit.serial

    async def _finish(
        self,
        principal: Principal,
        journal: Journal,
        status: str,
        reason: str = "",
        *,
        next_step: str = "",
    ) -> StackResult:
        journal.status = status
        journal.event(
            journal.stack, status, reason=reason
        )  # the stack itself, as in CloudFormation
        serial = await self._stack_entry(
            principal, journal, f"Stack {journal.stack}: {status}. {reason}".strip()
        )
        return self._result(journal, reason, serial, next_step)

    @staticmethod
    def _result(
        journal: Journal, reason: str = "", serial: int = 0, next_step: str = ""
    ) -> StackResult:
        return StackResult(
            journal.stack,
            journal.status,
            dict(journal.created),
            list(journal.events),
            reason,
            serial,
            next_step,
        )


class _Run:
    """One operation's steps, sharing the journal and the created resources' read-backs."""

    def __init__(
        self,
        ops: StackOperations,
        principal: Principal,
        journal: Journal,
        template: StackTemplate,
        on_event: OnEvent | None,
        authority: PlanAuthority | None = None,
    ) -> None:
        """``authority``: the plan token this run used; None when recovering (the journal
        names the token the dead process used)."""
        self.ops = ops
        self.principal = principal
        self.journal = journal
        self.template = template
        self.on_event = on_event
        self.authority = authority or PlanAuthority.recovering(
            ops.workflow, journal.stack, plan_id(journal)
        )
        self.outputs: dict[str, Created] = {}
        self._saving: set[asyncio.Task[None]] = set()  # journal saves the steps did not wait for

    async def _event(self, logical: str, status: str, **extra: str) -> None:
        event = self.journal.event(logical, status, **extra)
        await self.ops.journal.save(self.journal)
        if self.on_event is not None:
            self.on_event(event)

    def _event_soon(self, logical: str, status: str, **extra: str) -> asyncio.Task[None]:
        """``_event``, saved while the step goes on (the save starts now, so it is as durable
        as soon as before); ``flush`` waits for it and raises what it raised."""
        task = asyncio.ensure_future(self._event(logical, status, **extra))
        self._saving.add(task)
        return task

    async def flush(self) -> BaseException | None:
        """Wait for every journal save of this run; the first that failed, if any."""
        failed: BaseException | None = None
        while self._saving:
            task = self._saving.pop()
            await asyncio.wait([task])
            failed = failed or (None if task.cancelled() else task.exception())
        return failed

    async def create_one(self, logical: str) -> None:
        res = self.template.resources[logical]
        schema = await self.ops.workflow.schemas.get_schema(res.resource_type)
        properties = with_stack_tags(
            schema, resolve(res.properties, self.outputs), self.journal.stack, logical
        )
        self.journal.pending[logical] = res.resource_type
        # The journal is written while the token chain is prepared, and awaited under the
        # resource's lock before its token is used and Cloud Control is asked (precondition).
        pending = self._event_soon(logical, "CREATE_IN_PROGRESS", resource_type=res.resource_type)

        async def journal_written() -> None:
            await asyncio.shield(pending)

        intent = f"{self.journal.user_intent} (stack {self.journal.stack}: {logical})"
        try:
            auth = await self.authority.create(
                self.principal, logical, schema, properties, self.outputs, intent
            )
            outcome = await self.ops.operations.create(
                self.principal,
                resource_type=res.resource_type,
                credentials_token="",
                explained_token="",
                precondition=journal_written,
                authorization=auth,
            )
        except asyncio.CancelledError:
            raise  # the process stops here: pending stays, for recover to sweep
        except BaseException as exc:
            await asyncio.wait([pending])  # its own failure, if any, is flush()'s to raise
            if isinstance(exc, CcstateError):  # the cloud refused: nothing was created
                self.journal.pending.pop(logical, None)
            await self._event(
                logical, "CREATE_FAILED", resource_type=res.resource_type, reason=_reason(exc)
            )
            raise
        self.journal.pending.pop(logical, None)
        self.outputs[logical] = Created(outcome.identifier, dict(outcome.properties or {}))
        self.journal.created[logical] = {
            "type": res.resource_type,
            "identifier": outcome.identifier,
        }
        self.journal.order.append(logical)
        # Its dependents start while this is written: the save is under way already (a
        # process that dies before it lands leaves the step pending, for recover to sweep by
        # the stack's tags, as before), and create() flushes it before the outcome.
        self._event_soon(
            logical,
            "CREATE_COMPLETE",
            resource_type=res.resource_type,
            identifier=outcome.identifier,
        )

    async def delete_one(self, logical: str) -> None:
        entry = self.journal.created[logical]
        kind, identifier = entry["type"], entry["identifier"]
        await self._event(logical, "DELETE_IN_PROGRESS", resource_type=kind, identifier=identifier)
        intent = f"{self.journal.user_intent} (stack {self.journal.stack}: remove {logical})"
        why = "delete" if self.journal.operation == "destroy" else "rollback"
        try:
            auth = self.authority.delete(self.principal, logical, kind, identifier, why, intent)
            await self.ops.operations.delete(
                self.principal,
                resource_type=kind,
                identifier=identifier,
                credentials_token="",
                explained_token="",
                confirmed=True,
                authorization=auth,
            )
        except NotFound:
            pass  # already gone: what a delete wants
        except BaseException as exc:
            await self._event(
                logical,
                "DELETE_FAILED",
                resource_type=kind,
                identifier=identifier,
                reason=_reason(exc),
            )
            raise
        self.journal.created.pop(logical, None)
        await self._event(logical, "DELETE_COMPLETE", resource_type=kind, identifier=identifier)


def stack_lock(name: str) -> str:
    """The lock a stack operation holds: a resource-scope lock of its own name, so resources
    outside the stack stay changeable by others meanwhile."""
    return f"stack:{name}"


_CREATABLE = frozenset({"ROLLBACK_COMPLETE", "DELETE_COMPLETE"})


def plan_id(journal: Journal) -> str:
    """The plan token a stack operation used, as recorded ("sha256:<hash>"); a journal written
    before plan tokens names its plan's digest."""
    return journal.plan_token or f"stack-plan:{journal.plan_digest}"


def destroy_plan(journal: Journal, intent: str) -> StackPlan:
    created = journal.created
    lines = [f"Destroy stack {journal.stack} ({len(created)} resources): {intent}".rstrip(": ")]
    template = parse_template(journal.template)
    order = [n for n in reversed(template.order()) if n in created]
    order += sorted(n for n in created if n not in order)
    for logical in order:
        lines.append(
            f"- delete {logical} ({created[logical]['type']} {created[logical]['identifier']})"
        )
    lines.append("Dependents are deleted first; a delete has nothing to scan.")
    document = destroy_document(journal.stack, created)
    return StackPlan(journal.stack, "destroy", document, "\n".join(lines))


def plan_digest(name: str, template: StackTemplate) -> str:
    body = json.dumps({"stack": name, "resources": template.to_json()}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def explain_plan(name: str, template: StackTemplate, intent: str) -> str:
    lines = [f"Create stack {name} ({len(template.resources)} resources): {intent}"]
    for logical in template.order():
        res = template.resources[logical]
        after = f" after {', '.join(sorted(res.depends_on))}" if res.depends_on else ""
        lines.append(f"- {logical}: {res.resource_type}{after}")
    return "\n".join(lines)


def with_stack_tags(
    schema: ResourceSchema, properties: dict[str, Any], stack: str, logical: str
) -> dict[str, Any]:
    """The stack's tags on a taggable resource: how a resource whose creation was never
    recorded (the process died) is found again."""
    pointer = schema.tags_property
    if not pointer or "/" in pointer.strip("/"):
        return properties
    name = pointer.strip("/").removeprefix("properties/")
    ours = {STACK_TAG: stack, LOGICAL_TAG: logical}
    out = dict(properties)
    current = out.get(name)
    if isinstance(current, dict):
        out[name] = {**current, **ours}
    else:
        tags = [t for t in current or [] if isinstance(t, dict) and t.get("Key") not in ours]
        out[name] = tags + [{"Key": k, "Value": v} for k, v in ours.items()]
    return out


def _tags_of(properties: Mapping[str, Any]) -> dict[str, str]:
    tags = properties.get("Tags")
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {str(t.get("Key")): str(t.get("Value")) for t in tags if isinstance(t, dict)}
    return {}


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _check_destroyable(journal: Journal) -> None:
    name = journal.stack
    if journal.unfinished:
        raise StateConflict(
            f"Stack '{name}' has an operation that did not finish ({journal.status}).",
            next_step=f"Recover it first: ${{stack_recover}} {name}.",
            resources=[name],
            authors=[],
        )
    if journal.status == "UPDATE_FAILED":
        # The replaced resources' old ones are not in ``created``: deleting only what it lists
        # would leave them behind.
        raise StateConflict(
            f"Stack '{name}' is UPDATE_FAILED: an update stopped part-way, and the resources it "
            "replaced still exist beside the new ones.",
            next_step=f"Roll the update back first (${{stack_rollback}} {name}) or finish it by "
            "deploying the template again, then destroy the stack.",
            resources=[name],
            authors=[],
        )


def _names(what: str, names: list[str]) -> str:
    return f"{len(names)} {what}" + (f" ({', '.join(names)})" if names else "")


def stopped_next_step(name: str, status: str) -> str:
    """What to do with a stack stopped part-way because rollback was off ('' otherwise)."""
    if status == "UPDATE_FAILED":
        return (
            f"Fix the template and deploy it again to finish the update (${{stack_deploy}}), "
            f"or take the stack back to before the update (${{stack_rollback}} {name})."
        )
    if status == "CREATE_FAILED":
        return (
            f"Fix the template and deploy it again to create the rest (${{stack_deploy}}), "
            f"or destroy the stack (${{stack_destroy}} {name})."
        )
    return ""


def _nothing_to_recover(journal: Journal, result: StackResult) -> StackResult:
    """``recover`` of a stack that is not cut off: a stop asked for (rollback off) is not an
    interruption, so nothing is rolled back unasked; the answer says what the user can do."""
    what = {"UPDATE_FAILED": "update", "CREATE_FAILED": "create"}.get(journal.status)
    if what is None:
        return replace(result, reason="nothing to recover")
    reason = (
        f"Nothing to recover: the {what} stopped part-way because rollback was off, as asked; "
        "no operation was interrupted, and the journal records what it did."
    )
    return replace(
        result, reason=reason, next_step=stopped_next_step(journal.stack, journal.status)
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
