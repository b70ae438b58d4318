"""Updating a deployed stack, all or nothing, and rolling a stack back to before its last
update.

An update runs in two phases under the stack's lock:

1. Forward (``UPDATE_IN_PROGRESS``): adds, in-place updates (a Cloud Control patch of the
   changed top-level properties) and replacements (the new resource created beside the old
   one), in dependency order, independent ones in parallel. Each step is written to the
   journal before the cloud is asked, with what undoes it (an update: the properties before;
   an add or a replacement: deleting what it created). A failure, or a process that died here
   (``recover``), undoes the steps in reverse: ``UPDATE_ROLLBACK_COMPLETE``, the stack as before.
2. Cleanup (``UPDATE_COMPLETE_CLEANUP_IN_PROGRESS``), once every step succeeded: the old
   resources of replacements and the removed resources are deleted, dependents first. Past
   this point the update is kept; a delete that fails leaves ``UPDATE_COMPLETE_CLEANUP_FAILED``
   and ``recover`` finishes the cleanup (as it does after a crash here).

With rollback off (``rollback=False``), a failure in phase 1 stops it where it is
(``UPDATE_FAILED``): nothing new starts, the running steps finish, nothing is undone and no
cleanup runs; the journal keeps the steps (each with its outcome) as the undo journal.
Deploying again continues the same update from what landed (``base``); ``rollback`` undoes
the steps, back to the stack before the update. See docs/decisions.md "Stack updates without
rollback".

The template before the update stays with the stack (``previous_template``):
``rollback`` applies it as an update back. See docs/decisions.md "Stack updates".
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping
from typing import Any

from ccstate.service.authz.principal import Principal
from ccstate.service.changes.schema import ResourceSchema
from ccstate.service.changes.tagging import with_default_tags
from ccstate.service.changes.workflow import Workflow
from ccstate.service.errors import CcstateError, InvalidInput, NotFound, StateConflict
from ccstate.service.graph.state import build_graph
from ccstate.service.stacks.authority import (
    PLACEHOLDER,
    PlanAuthority,
    PlanScan,
    StackPlan,
    scan_plan_results,
    stopped_resources,
    undo_document,
    update_document,
)
from ccstate.service.stacks.journal import Journal
from ccstate.service.stacks.operations import (
    OnEvent,
    StackFailed,
    StackOperations,
    StackResult,
    _Run,
    stack_lock,
    stopped_next_step,
    with_stack_tags,
)
from ccstate.service.stacks.plan import FORWARD, UpdatePlan, compute_plan
from ccstate.service.stacks.scheduler import ScheduleResult, reversed_deps, run_dag
from ccstate.service.stacks.template import (
    Created,
    StackTemplate,
    _reference,
    parse_template,
    resolve,
    validate_stack_name,
)

UPDATABLE = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "CREATE_FAILED",
        "UPDATE_FAILED",  # continued from what landed (``_stop``)
    }
)
CREATABLE = frozenset({"ROLLBACK_COMPLETE", "DELETE_COMPLETE"})
_MISSING = object()
# The reason of a rollback that undid a stopped update: what was asked for, not a failure.
STOPPED_UPDATE_UNDONE = "the update that stopped part-way was undone from its journal"


class StackUpdates:
    """The update use cases, on the parts of ``StackOperations`` (its runner, journal, lock)."""

    def __init__(self, ops: StackOperations) -> None:
        self.ops = ops

    # ------------------------------------------------------------------ entry points

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
        """Create the stack, or update it when it is deployed (CloudFormation's and rain's
        ``deploy``)."""
        name = validate_stack_name(stack_name)
        journal = await self.ops.journal.load(name)
        if journal is None or journal.status in CREATABLE:
            return await self.ops.create(
                principal,
                name,
                resources,
                user_intent,
                rollback=rollback,
                on_event=on_event,
                plan_token=plan_token,
            )
        return await self.update(
            principal,
            name,
            resources,
            user_intent,
            rollback=rollback,
            on_event=on_event,
            plan_token=plan_token,
        )

    async def prepare(
        self,
        principal: Principal,
        stack_name: str,
        resources: Mapping[str, Any] | None,
        user_intent: str,
        *,
        rollback: bool = False,
    ) -> StackPlan | None:
        """An update's (or a rollback's) plan, explained and scanned; None: nothing changes.
        The rollback of an update that stopped (``UPDATE_FAILED``) is its undo plan."""
        name = validate_stack_name(stack_name)
        journal = await self.ops._existing(name)
        if rollback and journal.status == "UPDATE_FAILED":
            return self._undo_plan(principal, journal, user_intent)
        if rollback:
            resources = _previous(journal)
            user_intent = user_intent or f"roll stack {name} back to before its last update"
        _check_updatable(journal)
        template = parse_template(resources or {})
        plan = await self._plan(journal, template)
        if plan.empty and journal.status != "UPDATE_FAILED":  # a stopped one: its cleanup
            return None
        for operation in _operations(plan):
            self.ops.workflow.policy.check(principal, operation)  # type: ignore[arg-type]
        return await self._stack_plan(journal, template, plan, user_intent, scan=True)

    async def _stack_plan(
        self,
        journal: Journal,
        template: StackTemplate,
        plan: UpdatePlan,
        intent: str,
        *,
        scan: bool,
        live: dict[str, Created] | None = None,
    ) -> StackPlan:
        found = PlanScan()
        if scan:
            live = live if live is not None else await self._live(journal)
            renewed = set(plan.named("add", "replace"))  # their values are not known yet
            known = {n: c for n, c in live.items() if n not in renewed}
            found = await scan_plan_results(
                self.ops.workflow, journal.stack, template, plan.named(*FORWARD), known
            )
        actions = {n: a.to_dict() for n, a in plan.actions.items()}
        stopped = stopped_resources(journal.update) if journal.status == "UPDATE_FAILED" else {}
        document = update_document(journal.stack, template, actions, stopped)
        explanation = plan.explain(intent, found.note) + _continued(journal)
        return StackPlan(journal.stack, "update", document, explanation, found)

    async def plan(self, stack_name: str, resources: Mapping[str, Any]) -> UpdatePlan:
        """What an update would do, without doing it (the impact refusals included)."""
        name = validate_stack_name(stack_name)
        journal = await self.ops._existing(name)
        _check_updatable(journal)
        return await self._plan(journal, parse_template(resources))

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
        name = validate_stack_name(stack_name)
        template = parse_template(resources)
        ops = self.ops
        async with ops.operations.locked(principal, stack_lock(name), "update-stack"):
            journal = await ops._existing(name)
            _check_updatable(journal)
            plan = await self._plan(journal, template)
            if plan.empty and journal.status != "UPDATE_FAILED":  # a stopped one: its cleanup
                return ops._result(journal, "no changes")
            for operation in _operations(plan):
                ops.workflow.policy.check(principal, operation)  # type: ignore[arg-type]
            live = await self._live(journal)
            stack_plan = await self._stack_plan(
                journal, template, plan, user_intent, scan=plan_token is None, live=live
            )
            authority = await ops.plans.authorize(principal, stack_plan, plan_token, user_intent)
            _start(journal, template, plan, user_intent)
            journal.plan_token = authority.plan_id
            await ops._stack_entry(principal, journal, authority.explanation)
            run = _UpdateRun(ops, principal, journal, template, on_event, plan, live, authority)
            result = await run_dag(plan.forward_deps(), run.step, limit=ops.concurrency)
            if not result.ok:
                logical, error = next(iter(result.failed.items()))
                reason = f"{logical}: {_reason(error)}"
                if not rollback:
                    return await self._stop(principal, journal, plan, live, result, reason)
                await self._roll_back(principal, journal, on_event, authority)
                return await ops._finish(principal, journal, "UPDATE_ROLLBACK_COMPLETE", reason)
            return await self._complete(principal, journal, on_event, authority)

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
        """Apply the template the stack had before its last update, as an update; an update
        that stopped part-way (``UPDATE_FAILED``) is undone from its journal instead."""
        name = validate_stack_name(stack_name)
        journal = await self.ops._existing(name)
        if journal.status == "UPDATE_FAILED":
            return await self._undo_stopped(principal, name, user_intent, on_event, plan_token)
        intent = user_intent or f"roll stack {name} back to before its last update"
        return await self.update(
            principal,
            name,
            _previous(journal),
            intent,
            rollback=rollback,
            on_event=on_event,
            plan_token=plan_token,
        )

    async def _undo_stopped(
        self,
        principal: Principal,
        name: str,
        user_intent: str,
        on_event: OnEvent | None,
        plan_token: str | None,
    ) -> StackResult:
        """Undo the steps of an update that stopped (rollback off), in reverse, as a failed
        update with rollback on would have: the stack as before the update. A stack operation
        of its own: its plan (the steps it undoes) is authorized by its own plan token."""
        ops = self.ops
        async with ops.operations.locked(principal, stack_lock(name), "rollback-stack"):
            journal = await ops._existing(name)
            if journal.status == "UPDATE_FAILED":
                return await self._undo_journal(
                    principal, journal, user_intent, on_event, plan_token
                )
        # another process finished or undid it meanwhile: an ordinary rollback
        return await self.rollback(
            principal, name, user_intent=user_intent, on_event=on_event, plan_token=plan_token
        )

    def _undo_plan(self, principal: Principal, journal: Journal, user_intent: str) -> StackPlan:
        for operation in ("update", "delete"):
            self.ops.workflow.policy.check(principal, operation)  # type: ignore[arg-type]
        name = journal.stack
        intent = user_intent or f"roll back the stopped update of stack {name}"
        steps = journal.update.get("steps", [])
        explanation = (
            f"Roll back the stopped update of stack {name}: undo its {len(steps)} steps in "
            f"reverse ({', '.join(s['logical'] for s in reversed(steps)) or 'none'}): {intent}"
        )
        for step in reversed(steps):
            what = "patch back" if step["action"] == "update" else "delete the new"
            touched = step.get("identifier") or step.get("made") or "nothing was made"
            outcome = step.get("outcome", "complete")
            note = "" if outcome == "complete" else f"; its step {outcome}: only what changed"
            explanation += f"\n- {what} {step['logical']} ({step['type']} {touched}{note})"
        explanation += (
            "\nThe resources the update replaced were never touched and stay; a delete and a "
            "patch back have nothing to scan."
        )
        return StackPlan(name, "undo", undo_document(name, steps), explanation)

    async def _undo_journal(
        self,
        principal: Principal,
        journal: Journal,
        user_intent: str,
        on_event: OnEvent | None,
        plan_token: str | None,
    ) -> StackResult:
        name = journal.stack
        plan = self._undo_plan(principal, journal, user_intent)
        authority = await self.ops.plans.authorize(principal, plan, plan_token, user_intent)
        journal.user_intent = user_intent or f"roll back the stopped update of stack {name}"
        journal.holder_host, journal.holder_pid = socket.gethostname(), os.getpid()
        journal.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        journal.plan_token = authority.plan_id
        await self.ops._stack_entry(principal, journal, authority.explanation)
        await self._roll_back(principal, journal, on_event, authority)
        return await self.ops._finish(
            principal, journal, "UPDATE_ROLLBACK_COMPLETE", STOPPED_UPDATE_UNDONE
        )

    async def recover(
        self, principal: Principal, journal: Journal, on_event: OnEvent | None
    ) -> StackResult:
        """Called by ``StackOperations.recover`` under the stack's lock: the forward phase is
        rolled back, the cleanup finished."""
        if journal.status in ("UPDATE_IN_PROGRESS", "UPDATE_ROLLBACK_IN_PROGRESS"):
            await self._roll_back(principal, journal, on_event)
            return await self.ops._finish(
                principal, journal, "UPDATE_ROLLBACK_COMPLETE", "recovered after an interruption"
            )
        return await self._cleanup_and_finish(principal, journal, on_event)

    # ------------------------------------------------------------------ the plan

    async def _plan(self, journal: Journal, template: StackTemplate) -> UpdatePlan:
        old = parse_template(_base(journal))
        kinds = {r.resource_type for r in (*old.resources.values(), *template.resources.values())}
        kinds |= {c["type"] for c in journal.created.values()}
        schemas = {k: await self.ops.workflow.schemas.get_schema(k) for k in sorted(kinds)}
        plan = compute_plan(journal.stack, old, template, journal.created, schemas)
        if plan.empty:
            return plan
        return plan.with_dependents(await self._dependents(journal, plan))

    async def _dependents(self, journal: Journal, plan: UpdatePlan) -> dict[str, list[str]]:
        """What depends on each resource the update replaces or removes (the impact analysis
        of the dependency graph); refused while any of them is outside the stack."""
        view = await self.ops.store.current()
        dependency_graph = await build_graph(view.resources, self.ops.workflow.schemas)
        ours = {c["identifier"] for c in journal.created.values()}
        targets = {a.identifier for a in plan.actions.values() if a.action in ("replace", "remove")}
        found = {
            t: dependency_graph.dependents(t)
            for t in sorted(targets)
            if t and t in dependency_graph
        }
        outside = sorted(f"{d} -> {t}" for t, ds in found.items() for d in ds if d not in ours)
        if outside:
            raise StateConflict(
                f"Stack '{journal.stack}' cannot be updated: it replaces or removes resources "
                f"that resources outside it depend on ({', '.join(outside)}).",
                next_step="Change those resources first, or keep these resources in the stack.",
                resources=sorted({d.split(" -> ")[0] for d in outside}),
                authors=[],
            )
        return found

    async def _live(self, journal: Journal) -> dict[str, Created]:
        """Each deployed resource as Cloud Control reads it now: what references resolve to
        and what an in-place update's undo restores."""
        cloud = self.ops.workflow.cloud

        async def read(entry: Mapping[str, str]) -> Created:
            found = await cloud.get_resource(entry["type"], entry["identifier"])
            return Created(entry["identifier"], dict(found.properties or {}))

        names = list(journal.created)
        read_back = await asyncio.gather(*(read(journal.created[n]) for n in names))
        return dict(zip(names, read_back, strict=True))

    # ------------------------------------------------------------------ after the steps

    async def _complete(
        self,
        principal: Principal,
        journal: Journal,
        on_event: OnEvent | None,
        authority: PlanAuthority | None = None,
    ) -> StackResult:
        """Every step succeeded: the update is kept (the point of no return), then the old
        resources are deleted."""
        update = journal.update
        for logical, action in update["actions"].items():
            if action == "remove":
                journal.created.pop(logical, None)
        cleanup = _retired(update, journal.created)
        journal.previous_template = journal.template
        journal.template = update["template"]
        update["old_template"] = journal.previous_template
        update["steps"] = []
        update["cleanup"] = cleanup
        journal.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        await self.ops.journal.save(journal)
        return await self._cleanup_and_finish(principal, journal, on_event, authority)

    async def _cleanup_and_finish(
        self,
        principal: Principal,
        journal: Journal,
        on_event: OnEvent | None,
        authority: PlanAuthority | None = None,
    ) -> StackResult:
        journal.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        await self.ops.journal.save(journal)
        failed = await self._cleanup(principal, journal, on_event, authority)
        if failed:
            return await self.ops._finish(
                principal, journal, "UPDATE_COMPLETE_CLEANUP_FAILED", failed
            )
        journal.update = {}
        return await self.ops._finish(principal, journal, "UPDATE_COMPLETE")

    async def _cleanup(
        self,
        principal: Principal,
        journal: Journal,
        on_event: OnEvent | None,
        authority: PlanAuthority | None = None,
    ) -> str:
        """Delete the replaced and removed resources, dependents first (in the template they
        were deployed with); '' or why it stopped."""
        update = journal.update
        # By identifier: a logical name replaced twice (an update continued after it stopped)
        # has two old resources to delete.
        left = {c["identifier"]: c for c in update.get("cleanup", [])}
        if not left:
            return ""
        old = parse_template(update.get("old_template") or journal.template)
        needs = {n: set(r.depends_on) for n, r in old.resources.items()}
        if update.get("base"):
            for n, r in parse_template(update["base"]).resources.items():
                needs.setdefault(n, set()).update(r.depends_on)
                for d in r.depends_on:
                    needs.setdefault(d, set())
        deps = reversed_deps(needs)
        order = {
            i: {j for j, other in left.items() if other["logical"] in deps.get(c["logical"], ())}
            for i, c in left.items()
        }
        run = _UpdateRun(self.ops, principal, journal, old, on_event, None, {}, authority)

        async def delete(identifier: str) -> None:
            entry = left[identifier]
            await run.delete_old(entry["logical"], entry["type"], identifier)
            update["cleanup"] = [c for c in update["cleanup"] if c["identifier"] != identifier]
            await self.ops.journal.save(journal)

        result = await run_dag(order, delete, limit=self.ops.concurrency)
        if result.ok:
            return ""
        identifier, error = next(iter(result.failed.items()))
        return f"{left[identifier]['logical']} (old {identifier}): {_reason(error)}"

    # ------------------------------------------------------------------ stopping (no rollback)

    async def _stop(
        self,
        principal: Principal,
        journal: Journal,
        plan: UpdatePlan,
        live: Mapping[str, Created],
        result: ScheduleResult,
        reason: str,
    ) -> StackResult:
        """Rollback off: the update stays where it stopped. The journal records each step's
        outcome and what is deployed now (``base``: per logical name, the new definition where
        its step landed, the one before where it did not), which a new deploy plans from; the
        steps stay as the undo journal; the cleanup does not run."""
        update = journal.update
        await self._sweep(journal)  # a create asked whose answer was lost: recorded if it exists
        outcomes = _outcomes(plan, result, journal.created)
        for step in update["steps"]:
            if "outcome" in step:
                continue  # an earlier attempt's
            found = outcomes[step["logical"]]
            step["outcome"] = found["outcome"]
            if found.get("reason"):
                step["reason"] = found["reason"]
            made = journal.created.get(step["logical"], {}).get("identifier", "")
            if step["action"] != "update" and made and made != step.get("old_identifier"):
                step["made"] = made
        update["base"] = _landed(plan, outcomes, live)
        update["outcomes"] = outcomes
        update["retired"] = _retired(update, journal.created)
        return await self.ops._finish(
            principal,
            journal,
            "UPDATE_FAILED",
            f"{reason} ({_summary(outcomes, update['retired'])})",
            next_step=stopped_next_step(journal.stack, "UPDATE_FAILED"),
        )

    # ------------------------------------------------------------------ rolling back

    async def _roll_back(
        self,
        principal: Principal,
        journal: Journal,
        on_event: OnEvent | None,
        authority: PlanAuthority | None = None,
    ) -> None:
        """Undo the steps in reverse: patch updates back, delete what was created; the old
        resources of replacements were never touched."""
        ops = self.ops
        journal.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        await ops.journal.save(journal)
        await self._sweep(journal)
        update = journal.update
        template = parse_template(update["template"])
        run = _UpdateRun(ops, principal, journal, template, on_event, None, {}, authority)
        steps: list[dict[str, Any]] = update.get("steps", [])
        try:
            while steps:
                await run.undo(steps[-1])
                steps.pop()
                await ops.journal.save(journal)
        except CcstateError as exc:
            raise StackFailed(
                f"Stack '{journal.stack}' could not be rolled back completely: {exc.message}",
                next_step=f"Fix the cause, then run ${{stack_recover}} {journal.stack}.",
                stack=journal.stack,
            ) from exc
        journal.created = dict(update["before_created"])
        journal.update = {}
        await ops.journal.save(journal)

    async def _sweep(self, journal: Journal) -> None:
        """A create asked of the cloud whose answer the dead process never recorded: found by
        the stack's tags, skipping the resources the stack had before (a replacement's old
        one carries the same tags)."""
        before = journal.update.get("before_created", {})
        known = frozenset(
            c["identifier"] for c in (*before.values(), *journal.created.values())
        ) | frozenset(s["made"] for s in journal.update.get("steps", []) if s.get("made"))
        for logical, resource_type in list(journal.pending.items()):
            found = await self.ops._find_tagged(
                resource_type, journal.stack, logical, exclude=known
            )
            if found:
                journal.created[logical] = {"type": resource_type, "identifier": found}
            journal.pending.pop(logical)
        await self.ops.journal.save(journal)


def _base(journal: Journal) -> dict[str, Any]:
    """The template an update plans from: the one deployed, or after a stop what landed."""
    if journal.status == "UPDATE_FAILED" and journal.update.get("base"):
        return journal.update["base"]
    return journal.template


def _landed(
    plan: UpdatePlan, outcomes: Mapping[str, Mapping[str, Any]], live: Mapping[str, Created]
) -> dict[str, Any]:
    """The template of what is deployed after a stop: the new definition where a step
    landed, the one before elsewhere; there, a reference to a resource that landed is pinned
    to the value it had before the update (what that resource was deployed with), so the
    next plan sees it changed and patches or replaces it."""
    landed = {n for n, found in outcomes.items() if found["landed"]}
    base = plan.old.to_json()
    new = plan.new.to_json()
    for logical, body in base.items():
        if logical in landed:
            base[logical] = new[logical]
        else:
            body["Properties"] = _pinned(body.get("Properties", {}), live, landed)
    for logical in landed - base.keys():
        base[logical] = new[logical]
    return base


def _pinned(value: Any, live: Mapping[str, Created], names: set[str]) -> Any:
    if isinstance(value, Mapping):
        ref = _reference(value)
        if ref is None:
            return {k: _pinned(v, live, names) for k, v in value.items()}
        name, attr = ref
        if name in names and name in live and (attr is None or attr in live[name].properties):
            return resolve(value, live)
        return dict(value)
    if isinstance(value, list):
        return [_pinned(v, live, names) for v in value]
    return value


def _outcomes(
    plan: UpdatePlan, result: ScheduleResult, created: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, Any]]:
    """Per forward action: complete, failed (with why) or not started, and whether its new
    definition is what is deployed now (an update that completed; an add or a replacement
    whose new resource exists, even if its step did not finish)."""
    out: dict[str, dict[str, Any]] = {}
    for logical in plan.named(*FORWARD):
        action = plan.actions[logical]
        found: dict[str, Any] = {"action": action.action, "outcome": "not started"}
        if logical in result.done:
            found["outcome"] = "complete"
        elif logical in result.failed:
            found |= {"outcome": "failed", "reason": _reason(result.failed[logical])}
        if action.action == "update":
            found["landed"] = found["outcome"] == "complete"
        else:
            now = created.get(logical, {}).get("identifier", "")
            found["landed"] = bool(now) and now != action.identifier
        out[logical] = found
    for logical in plan.named("remove", "replace"):
        out.setdefault(logical, {"action": "remove", "outcome": "not started", "landed": False})
        out[logical]["cleanup"] = "not run"
    return out


def _retired(
    update: Mapping[str, Any], created: Mapping[str, Mapping[str, str]]
) -> list[dict[str, str]]:
    """The resources the update made or found that the stack no longer lists: the old ones
    of replacements, the removed ones, and a new one replaced again by a continued update."""
    kept = {c["identifier"] for c in created.values()}
    out: dict[str, dict[str, str]] = {}
    for logical, entry in update.get("before_created", {}).items():
        out[entry["identifier"]] = {"logical": logical, **entry}
    for step in update.get("steps", []):
        if step.get("made"):
            entry = {"type": step["type"], "identifier": step["made"]}
            out.setdefault(step["made"], {"logical": step["logical"], **entry})
    return [c for i, c in out.items() if i not in kept]


def _type_of(update: Mapping[str, Any], identifier: str, default: str) -> str:
    for entry in update.get("before_created", {}).values():
        if entry["identifier"] == identifier:
            return str(entry["type"])
    for step in update.get("steps", []):
        if step.get("made") == identifier:
            return str(step["type"])
    return default


def _summary(outcomes: Mapping[str, Mapping[str, Any]], retired: list[dict[str, str]]) -> str:
    """One line of what the stopped update did and did not do."""
    by: dict[str, list[str]] = {}
    for logical, found in outcomes.items():
        if found["action"] != "remove":
            by.setdefault(found["outcome"], []).append(logical)
    kinds = ("complete", "failed", "not started")
    parts = [f"{k}: {', '.join(sorted(by[k]))}" for k in kinds if by.get(k)]
    removals = sorted(n for n, f in outcomes.items() if f["action"] == "remove")
    if removals:
        parts.append(f"not removed: {', '.join(removals)}")
    if retired:
        olds = ", ".join(f"{c['logical']} ({c['identifier']})" for c in retired)
        parts.append(f"replaced, old one not deleted: {olds}")
    return "stopped without rolling back; " + "; ".join(parts)


def _continued(journal: Journal) -> str:
    """What a plan that continues a stopped update also does (its plan token covers it)."""
    if journal.status != "UPDATE_FAILED":
        return ""
    update = journal.update
    steps = ", ".join(s["logical"] for s in update.get("steps", [])) or "none"
    retired = ", ".join(f"{c['logical']} ({c['identifier']})" for c in update.get("retired", []))
    text = (
        "\nThis continues the update that stopped part-way: a failure with rollback on also "
        f"undoes its earlier steps ({steps})"
    )
    if retired:
        text += f"; once every step succeeded, the old resources it replaced are deleted: {retired}"
    return text + "."


def _check_updatable(journal: Journal) -> None:
    if journal.unfinished:
        raise StateConflict(
            f"Stack '{journal.stack}' has an operation that did not finish ({journal.status}).",
            next_step=f"Recover it first: ${{stack_recover}} {journal.stack}.",
            resources=[journal.stack],
            authors=[],
        )
    if journal.status not in UPDATABLE:
        raise StateConflict(
            f"Stack '{journal.stack}' is {journal.status}: there is nothing deployed to update.",
            next_step="Deploy it again: it is created anew.",
            resources=[journal.stack],
            authors=[],
        )


def _previous(journal: Journal) -> dict[str, Any]:
    if journal.previous_template is None:
        raise InvalidInput(
            f"Stack '{journal.stack}' has not been updated: there is no earlier template to roll "
            "back to.",
            next_step="Deploy a changed template to update it first.",
            stack=journal.stack,
        )
    return journal.previous_template


def _operations(plan: UpdatePlan) -> set[str]:
    kinds = {a.action for a in plan.actions.values()}
    needed = {"add": "create", "replace": "create", "update": "update", "remove": "delete"}
    out = {needed[k] for k in kinds}
    return out | ({"delete"} if "replace" in kinds else set())


def _start(journal: Journal, template: StackTemplate, plan: UpdatePlan, intent: str) -> None:
    # After a stop (UPDATE_FAILED) this continues the same update: its resources before and
    # its steps are kept, so a rollback still goes back to the stack before the first attempt.
    kept = journal.update if journal.status == "UPDATE_FAILED" else {}
    journal.operation = "update"
    journal.status = "UPDATE_IN_PROGRESS"
    journal.user_intent = intent
    journal.plan_digest = plan.digest()
    journal.holder_host = socket.gethostname()
    journal.holder_pid = os.getpid()
    journal.pending = {}
    journal.update = {
        "template": template.to_json(),
        "before_created": {n: dict(c) for n, c in journal.created.items()},
        "actions": {n: a.action for n, a in plan.actions.items()},
        "steps": [],
    }
    for key in ("before_created", "steps", "base"):
        if key in kept:
            journal.update[key] = kept[key]


class _UpdateRun(_Run):
    """The steps of one update: creates (adds, replacements) as a create's, plus in-place
    updates, their undo, and the old resources' deletes."""

    def __init__(
        self,
        ops: StackOperations,
        principal: Principal,
        journal: Journal,
        template: StackTemplate,
        on_event: OnEvent | None,
        plan: UpdatePlan | None,
        live: dict[str, Created],
        authority: PlanAuthority | None = None,
    ) -> None:
        super().__init__(ops, principal, journal, template, on_event, authority)
        self.plan = plan
        self.live = live
        self.outputs.update(live)  # references to what stays resolve to it as it is

    async def step(self, logical: str) -> None:
        assert self.plan is not None
        action = self.plan.actions[logical]
        steps = self.journal.update["steps"]
        if action.action == "update":
            await self.update_one(logical)
            return
        # Recorded before the create is asked: undoing it deletes whatever it made.
        steps.append(
            {
                "logical": logical,
                "action": action.action,
                "type": action.resource_type,
                "old_identifier": action.identifier,
            }
        )
        await self.create_one(logical)

    async def update_one(self, logical: str) -> None:
        assert self.plan is not None
        entry = self.journal.created[logical]
        kind, identifier = entry["type"], entry["identifier"]
        schema = await self.ops.workflow.schemas.get_schema(kind)
        before = render(
            self.ops.workflow,
            schema,
            self.plan.old.resources[logical].properties,
            self.live,
            self.journal.stack,
            logical,
        )
        after = render(
            self.ops.workflow,
            schema,
            self.template.resources[logical].properties,
            self.outputs,
            self.journal.stack,
            logical,
        )
        patch, undo = patch_between(before, after, self.live[logical].properties)
        if not patch:
            return  # a Fn::GetAtt it reads did not change after all
        self.journal.update["steps"].append(
            {
                "logical": logical,
                "action": "update",
                "type": kind,
                "identifier": identifier,
                "undo": undo,
            }
        )
        await self._event(logical, "UPDATE_IN_PROGRESS", resource_type=kind, identifier=identifier)
        outcome = await self._patch(logical, kind, identifier, patch, "update", after)
        self.outputs[logical] = Created(identifier, dict(outcome.properties or {}))
        await self._event(logical, "UPDATE_COMPLETE", resource_type=kind, identifier=identifier)

    async def _patch(
        self,
        logical: str,
        kind: str,
        identifier: str,
        patch: list[dict[str, Any]],
        what: str,
        after: dict[str, Any] | None = None,
    ) -> Any:
        """``after``: the rendered properties a forward update leads to; None: an undo."""
        intent = f"{self.journal.user_intent} (stack {self.journal.stack}: {what} {logical})"
        try:
            schema = await self.ops.workflow.schemas.get_schema(kind)
            auth = await self.authority.update(
                self.principal, logical, schema, identifier, patch, after, self.outputs, intent
            )
            outcome = await self.ops.operations.update(
                self.principal,
                resource_type=kind,
                identifier=identifier,
                credentials_token="",
                explained_token="",
                patch_document=patch,
                authorization=auth,
            )
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await self._event(
                logical, "UPDATE_FAILED", resource_type=kind, identifier=identifier,
                reason=_reason(exc),
            )  # fmt: skip
            raise
        return outcome

    async def undo(self, step: Mapping[str, Any]) -> None:
        logical = step["logical"]
        if step["action"] == "update":
            kind, identifier = step["type"], step["identifier"]
            cloud = self.ops.workflow.cloud
            try:
                now = (await cloud.get_resource(kind, identifier)).properties or {}
            except NotFound:
                return
            patch = [op for op in step["undo"] if _still_needed(op, now)]
            if not patch:
                return
            await self._event(
                logical, "UPDATE_IN_PROGRESS", resource_type=kind, identifier=identifier,
                reason="rolling back",
            )  # fmt: skip
            await self._patch(logical, kind, identifier, patch, "roll back")
            await self._event(
                logical, "UPDATE_COMPLETE", resource_type=kind, identifier=identifier,
                reason="rolled back",
            )  # fmt: skip
            return
        made = self.journal.created.get(logical)
        old = step.get("old_identifier")
        if made and made["identifier"] != old:
            await self.delete_one(logical)  # the new one: dependents were undone before it
        if old:  # an earlier step (an update continued after a stop) may undo that one too
            self.journal.created[logical] = {
                "type": _type_of(self.journal.update, old, step["type"]),
                "identifier": old,
            }

    async def delete_old(self, logical: str, kind: str, identifier: str) -> None:
        """A replaced resource's old one, or a removed one."""
        await self._event(logical, "DELETE_IN_PROGRESS", resource_type=kind, identifier=identifier)
        intent = f"{self.journal.user_intent} (stack {self.journal.stack}: remove old {logical})"
        try:
            auth = self.authority.delete(
                self.principal, logical, kind, identifier, "cleanup", intent
            )
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
            pass
        except BaseException as exc:
            await self._event(
                logical, "DELETE_FAILED", resource_type=kind, identifier=identifier,
                reason=_reason(exc),
            )  # fmt: skip
            raise
        await self._event(logical, "DELETE_COMPLETE", resource_type=kind, identifier=identifier)


# ---------------------------------------------------------------------- rendering and patches


def render(
    workflow: Workflow,
    schema: ResourceSchema,
    properties: Mapping[str, Any],
    outputs: Mapping[str, Created],
    stack: str,
    logical: str,
    *,
    placeholders: bool = False,
) -> dict[str, Any]:
    """The properties as a create sends them: references resolved (or, for a scan before
    they exist, placeholders), the stack's tags and the default tags added."""
    if placeholders:
        resolved = _with_placeholders(properties, outputs)
    else:
        resolved = resolve(properties, outputs)
    out = with_stack_tags(schema, resolved, stack, logical)
    if workflow.config.default_tags:
        out = with_default_tags(schema, out)
    return out


def _with_placeholders(value: Any, outputs: Mapping[str, Created]) -> Any:
    if isinstance(value, Mapping):
        ref = _reference(value)
        if ref is None:
            return {k: _with_placeholders(v, outputs) for k, v in value.items()}
        name, attr = ref
        if name in outputs and (attr is None or attr in outputs[name].properties):
            return resolve(value, outputs)
        return f"{PLACEHOLDER}{name}.{attr or 'Ref'}"  # known only once it exists
    if isinstance(value, list):
        return [_with_placeholders(v, outputs) for v in value]
    return value


def patch_between(
    before: Mapping[str, Any], after: Mapping[str, Any], live: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The patch of the top-level properties that change, and the patch that undoes it: each
    back to its value as read before the update (or as the template had it, for a property
    Cloud Control does not return, such as a write-only one)."""
    patch: list[dict[str, Any]] = []
    undo: list[dict[str, Any]] = []
    for key in sorted({*before, *after}):
        if before.get(key, _MISSING) == after.get(key, _MISSING):
            continue
        path = "/" + key.replace("~", "~0").replace("/", "~1")
        if key in after:
            patch.append({"op": "add", "path": path, "value": after[key]})
        elif key in live:
            patch.append({"op": "remove", "path": path})
        else:
            continue
        if key in live:
            undo.append({"op": "add", "path": path, "value": live[key]})
        elif key in before:
            undo.append({"op": "add", "path": path, "value": before[key]})
        else:
            undo.append({"op": "remove", "path": path})
    return patch, undo


def _still_needed(op: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    key = op["path"][1:].replace("~1", "/").replace("~0", "~")
    if op["op"] == "remove":
        return key in now
    return now.get(key, _MISSING) != op["value"]


async def scan_plan(
    workflow: Workflow,
    stack: str,
    template: StackTemplate,
    names: list[str],
    outputs: Mapping[str, Created],
) -> str:
    """The plan-wide scan (``authority.scan_plan_results``); the line the explanation carries."""
    return (await scan_plan_results(workflow, stack, template, names, outputs)).note


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
