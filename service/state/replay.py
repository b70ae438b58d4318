"""Materialized state and the pure function that applies one commit to it.

``StateView`` is what a snapshot holds: the current resources (without their lineage), the
stacks, and the last serial that touched each resource (including resources since deleted).
Lineage is not copied into snapshots: it lives once, in the log. The serials that touched a
resource are kept in its index object (``indexes.py``), complete up to ``indexed_through``
except for the serials the view holds in ``unindexed``: those it applied after that, and those
a snapshot carried as still ``pending`` (on S3 committers merge them into the indexes one or two
per commit, instead of the snapshot's writer all at once). That keeps snapshot, load and commit
cost independent of history length.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.errors import StateCorrupt, UnsupportedVersion
from ccstate.service.state.model import (
    MANAGED_BY,
    REMOVING_OPERATIONS,
    SNAPSHOT_FORMAT,
    SNAPSHOT_FORMAT_V2,
    SNAPSHOT_FORMAT_V3,
    STATE_VERSION,
    Commit,
    LineageEntry,
    ResourceChange,
    ResourceState,
    Stack,
    StateDocument,
    StateMetadata,
)


@dataclass
class StateView:
    serial: int = 0
    lineage: str = ""
    created: str = ""
    last_updated: str = ""
    total_operations: int = 0
    resources: dict[str, ResourceState] = field(default_factory=dict)
    stacks: dict[str, Stack] = field(default_factory=dict)
    # The last applied serial that touched each resource, deleted ones included.
    last_touched: dict[str, int] = field(default_factory=dict)
    # The index objects list every applied serial up to ``indexed_through`` (0: none are
    # trusted) except those in ``unindexed``: the ones this view applied after it, and those a
    # snapshot of format /4 carried as ``pending`` (at or below it). ``restarted``: the serial
    # of an import after it that restarted a resource's history (never pending).
    indexed_through: int = 0
    unindexed: dict[str, list[int]] = field(default_factory=dict)
    restarted: dict[str, int] = field(default_factory=dict)
    # Every such import per resource, oldest first: an index written for this window keeps them
    # all (a snapshot between two of them reads its history from the one before it).
    restarts: dict[str, list[int]] = field(default_factory=dict)
    # A view of the fences and one resource's history only (``StateStore.history`` on a cold
    # store): never snapshotted, never shown.
    partial: bool = False
    # The resources that have an index object (touched up to ``indexed_through``, less the
    # snapshot's ``pending_new``, plus those a commit's ``indexed`` note created).
    indexed_ids: set[str] = field(default_factory=set)
    # The highest fencing token committed per resource, and by whole-workspace commits.
    fences: dict[str, int] = field(default_factory=dict)
    fence_all: int = 0
    # Commits ignored because their fencing token was older than one already committed.
    fenced_out: list[int] = field(default_factory=list)

    def copy(self) -> StateView:
        return copy.deepcopy(self)

    def detached(self) -> StateView:
        """A copy that later commits applied to this view leave as it is, at a fraction of
        ``copy``'s cost: ``apply_commit`` replaces a resource's fields and list entries, it
        never changes them in place, so one level of each container is copied."""
        return dataclasses.replace(
            self,
            resources={k: r.model_copy() for k, r in self.resources.items()},
            stacks=dict(self.stacks),
            last_touched=dict(self.last_touched),
            unindexed={k: list(v) for k, v in self.unindexed.items()},
            restarted=dict(self.restarted),
            restarts={k: list(v) for k, v in self.restarts.items()},
            indexed_ids=set(self.indexed_ids),
            fences=dict(self.fences),
            fenced_out=list(self.fenced_out),
        )

    def window_of(self, identifier: str) -> list[int]:
        """The serials this view applied to ``identifier`` after its indexed part (from its
        last restart on, if one is among them)."""
        window = self.unindexed.get(identifier, [])
        start = self.restarted.get(identifier, 0)
        return [s for s in window if s >= start]

    # ----------------------------------------------------------------- snapshot (de)serialization

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "format": SNAPSHOT_FORMAT,
            "serial": self.serial,
            "lineage": self.lineage,
            "created": self.created,
            "last_updated": self.last_updated,
            "total_operations": self.total_operations,
            "resources": {k: r.model_dump(mode="json") for k, r in self.resources.items()},
            "stacks": {k: s.model_dump(mode="json") for k, s in self.stacks.items()},
            "last_touched": self.last_touched,
            "fences": self.fences,
            "fence_all": self.fence_all,
            "fenced_out": self.fenced_out,
        }

    def pending(self) -> dict[str, Any]:
        """What a snapshot at this view's serial carries of its unindexed serials (after
        ``settle_indexes``): ``pending`` per resource, and ``pending_new``, those of them that
        have no index object yet."""
        pending = {k: list(v) for k, v in sorted(self.unindexed.items()) if v}
        return {
            "pending": pending,
            "pending_new": sorted(k for k in pending if k not in self.indexed_ids),
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any], *, where: str) -> StateView:
        """A view from a snapshot of format /4, /3 (nothing pending), or /2 (which still lists
        every resource's serials: they become this view's ``unindexed``, and the next snapshot
        written from it writes the index objects, so a /2 state migrates without a step of its
        own)."""
        if data.get("format") not in (SNAPSHOT_FORMAT, SNAPSHOT_FORMAT_V3, SNAPSHOT_FORMAT_V2):
            raise UnsupportedVersion(
                f"Snapshot {where} has format {data.get('format')!r}; this ccstate reads "
                f"{SNAPSHOT_FORMAT!r}.",
                next_step="Upgrade ccstate, or delete the snapshot so the log is replayed.",
            )
        try:
            if data["format"] == SNAPSHOT_FORMAT_V2:
                unindexed = {k: [int(s) for s in v] for k, v in data["history_index"].items()}
                last_touched = {k: v[-1] for k, v in unindexed.items() if v}
                indexed_through, indexed_ids = 0, set()
            else:
                last_touched = {k: int(v) for k, v in data["last_touched"].items()}
                unindexed, unknown = _pending_of(data, last_touched)
                indexed_through, indexed_ids = int(data["serial"]), set(last_touched) - unknown
            return cls(
                serial=int(data["serial"]),
                lineage=str(data["lineage"]),
                created=str(data["created"]),
                last_updated=str(data["last_updated"]),
                total_operations=int(data["total_operations"]),
                resources={
                    k: ResourceState.model_validate(v) for k, v in data["resources"].items()
                },
                stacks={k: Stack.model_validate(v) for k, v in data["stacks"].items()},
                last_touched=last_touched,
                indexed_through=indexed_through,
                unindexed=unindexed,
                indexed_ids=indexed_ids,
                fences={k: int(v) for k, v in data.get("fences", {}).items()},
                fence_all=int(data.get("fence_all", 0)),
                fenced_out=[int(s) for s in data.get("fenced_out", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateCorrupt(
                f"Snapshot {where} is malformed ({exc}).",
                next_step="Delete the snapshot file; the state is rebuilt from the log.",
            ) from exc

    # ----------------------------------------------------------------- the seed document

    def to_document(
        self, lineage_of: dict[str, list[LineageEntry]], *, server_version: str, workspace: str
    ) -> StateDocument:
        resources = {}
        for key, res in self.resources.items():
            data = res.model_dump(mode="json")
            data["lineage"] = [e.model_dump(mode="json") for e in lineage_of.get(key, [])]
            resources[key] = data
        metadata = StateMetadata(
            created=self.created,
            last_updated=self.last_updated,
            mcp_server_version=server_version,
            total_resources=len(self.resources),
            total_operations=self.total_operations,
            lineage=self.lineage,
            serial=self.serial,
            workspace=workspace,
        )
        # Built from full dumps, so every field is explicit whatever way the view was built.
        return StateDocument.model_validate(
            {
                "version": STATE_VERSION,
                "metadata": metadata.model_dump(mode="json"),
                "resources": resources,
                "stacks": {k: s.model_dump(mode="json") for k, s in self.stacks.items()},
            }
        )


def _pending_of(
    data: dict[str, Any], last_touched: dict[str, int]
) -> tuple[dict[str, list[int]], set[str]]:
    """A snapshot's ``pending`` serials and ``pending_new`` resources (none before /4), checked
    against what it says was touched when."""
    pending = {str(k): [int(s) for s in v] for k, v in data.get("pending", {}).items()}
    unknown = {str(k) for k in data.get("pending_new", [])}
    serial = int(data["serial"])
    for key, serials in pending.items():
        if not serials or max(serials) > min(last_touched.get(key, 0), serial):
            raise ValueError(f"pending serials of {key!r} do not match the snapshot")
    if unknown - set(pending):
        raise ValueError("pending_new names a resource with nothing pending")
    return pending, unknown


def apply_commit(view: StateView, commit: Commit) -> None:
    """Advance ``view`` by one commit, in place. Pure: no I/O."""
    if commit.serial != view.serial + 1:
        raise StateCorrupt(
            f"Commit {commit.serial} does not follow serial {view.serial}.",
            next_step="The log has a gap or a duplicate; run ${versions} and "
            "restore the missing commit file from a backup.",
        )
    if view.serial and commit.lineage != view.lineage:
        raise StateCorrupt(
            f"Commit {commit.serial} belongs to lineage {commit.lineage}, not {view.lineage}.",
            next_step="A commit from another state was copied into this log; remove it.",
        )
    if view.serial == 0:
        view.lineage = commit.lineage
        view.created = commit.committed_at
    if fenced_out(view, commit):
        # Made under a lock whose lease had passed to a newer holder: ignored, as if void.
        view.fenced_out.append(commit.serial)
        view.serial = commit.serial
        return
    _record_fence(view, commit)
    if commit.indexed:
        _note_indexed(view, commit.indexed)
    if commit.replace_state is not None:
        _replace_state(view, commit)
    for change in commit.changes:
        _apply_change(view, commit, change)
    for stack_change in commit.stacks:
        if stack_change.stack is None:
            view.stacks.pop(stack_change.name, None)
        else:
            view.stacks[stack_change.name] = stack_change.stack.model_copy(deep=True)
    view.serial = commit.serial
    view.last_updated = commit.committed_at
    view.total_operations += len(commit.changes)


def _note_indexed(view: StateView, indexed: dict[str, list[int]]) -> None:
    """A commit's writer merged these serials into these resources' indexes before writing
    it: they are no longer this view's to index. Only those at or below this view's indexed
    part are dropped (a view that loaded an older snapshot still has the rest to write, and
    writing a window replaces what the index holds in it)."""
    for identifier, serials in indexed.items():
        view.indexed_ids.add(identifier)
        held = view.unindexed.get(identifier)
        if not held or identifier in view.restarted:
            continue
        done = {s for s in serials if s <= view.indexed_through}
        left = [s for s in held if s not in done]
        if left:
            view.unindexed[identifier] = left
        else:
            del view.unindexed[identifier]


def fence_floor(view: StateView, commit: Commit) -> int:
    """The highest fencing token already committed for what ``commit`` touches."""
    floor = view.fence_all
    if commit.whole_workspace:
        return max([floor, *view.fences.values()])
    for change in commit.changes:
        floor = max(floor, view.fences.get(change.identifier, 0))
    return floor


def fenced_out(view: StateView, commit: Commit) -> bool:
    """Whether ``commit`` was made under a lock older than one already committed for one of
    its resources (a holder that stalled past its lease). Commits without a token (made
    without a lock, or before fencing) are never fenced out."""
    return commit.fence is not None and commit.fence < fence_floor(view, commit)


def _record_fence(view: StateView, commit: Commit) -> None:
    if commit.fence is None:
        return
    if commit.whole_workspace:
        view.fence_all = max(view.fence_all, commit.fence)
    for change in commit.changes:
        view.fences[change.identifier] = max(view.fences.get(change.identifier, 0), commit.fence)


def _apply_change(view: StateView, commit: Commit, change: ResourceChange) -> None:
    view.unindexed.setdefault(change.identifier, []).append(commit.serial)
    view.last_touched[change.identifier] = commit.serial
    existing = view.resources.get(change.identifier)
    if change.outcome != "SUCCESS":
        if existing is not None:
            existing.last_modified = commit.committed_at
        return
    if change.drift_status is not None and existing is not None:
        existing.drift_status = change.drift_status.model_copy(deep=True)
    if change.operation == "drift_check":
        return
    if _removes(change):
        view.resources.pop(change.identifier, None)
        return
    if change.properties_after is None:
        return
    if existing is None:
        existing = ResourceState(
            resource_type=change.resource_type,
            identifier=change.identifier,
            created_at=commit.committed_at,
            managed_by=change.managed_by or MANAGED_BY,
        )
        view.resources[change.identifier] = existing
    existing.resource_type = change.resource_type
    existing.current_properties = copy.deepcopy(change.properties_after)
    existing.region = change.region or existing.region
    existing.account_id = change.account_id or existing.account_id
    existing.last_modified = commit.committed_at
    if change.dependencies is not None:
        existing.dependencies = change.dependencies.model_copy(deep=True)


def _removes(change: ResourceChange) -> bool:
    if change.operation in REMOVING_OPERATIONS:
        return True
    return change.operation in ("restore", "rollback") and change.properties_after is None


def _replace_state(view: StateView, commit: Commit) -> None:
    """An import: the document becomes the state; its lineage stays readable in this commit."""
    doc = StateDocument.model_validate(commit.replace_state)
    view.resources = {}
    for key, res in doc.resources.items():
        bare = res.model_copy(deep=True)
        bare.lineage = []
        view.resources[key] = bare
        # The document carries the resource's whole lineage, so its history restarts here
        # (the serials before stay listed: a view of the past still reads them).
        view.unindexed.setdefault(key, []).append(commit.serial)
        view.restarted[key] = commit.serial
        view.restarts.setdefault(key, []).append(commit.serial)
        view.last_touched[key] = commit.serial
    view.stacks = copy.deepcopy(doc.stacks)
    view.total_operations = doc.metadata.total_operations


def lineage_from_commit(commit: Commit, identifier: str) -> list[LineageEntry]:
    """The lineage entries one commit contributes to one resource's history."""
    entries: list[LineageEntry] = []
    if commit.replace_state is not None:
        res = commit.replace_state.get("resources", {}).get(identifier)
        if res is not None:
            entries += [LineageEntry.model_validate(e) for e in res.get("lineage", [])]
            entries.append(
                LineageEntry(
                    execution_token=commit.execution_token,
                    operation="import",
                    timestamp=commit.committed_at,
                    user=commit.principal.authenticated_user or commit.principal.user,
                    aws_session=commit.principal.aws_session,
                    properties_before=None,
                    properties_after=res.get("current_properties"),
                    explanation=commit.explanation,
                    user_intent=commit.user_intent,
                    outcome="SUCCESS",
                    serial=commit.serial,
                )
            )
    entries += [commit.lineage_entry(c) for c in commit.changes if c.identifier == identifier]
    return entries
