"""A light, read-only listing of the state at head: the newest snapshot and the commits after it,
read as JSON without building the pydantic models (``state list`` at 10,000 resources spent most
of its time validating every resource of the snapshot).

It answers only when it is sure: the pointer and the snapshot pass their digests and name the
log's commit, every commit after it passes its digest and has the shape the store writes, the
log ends where the store's load would end, and the readable export does not claim a later head.
Anything else (a refused snapshot, a gap, a commit that replaces the whole state, an odd value,
a format this module does not know) returns None, and the caller reads through ``StateStore``,
which reports or repairs it exactly as for any other command. The rows equal those of the
validated view (tests/unit/store/test_light_listing.py compares them over generated histories).

Nothing here imports pydantic or the state model: ``FORMATS`` repeats the store's constants and
a test checks that they agree.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ccstate.service.ports import ObjectStore

log = logging.getLogger(__name__)

COMMIT_FORMAT = "ccstate.commit/1"
SNAPSHOT_FORMAT = "ccstate.snapshot/4"
SNAPSHOT_FORMAT_V3 = "ccstate.snapshot/3"  # nothing pending
SNAPSHOT_FORMAT_V2 = "ccstate.snapshot/2"  # every resource's serials, no index objects
POINTER_FORMAT = "ccstate.snapshot-pointer/2"
SERIAL_WIDTH = 20
REMOVING_OPERATIONS = frozenset({"delete", "forget"})
# Commit kinds that may change any resource (``Commit.whole_workspace``).
WHOLE_WORKSPACE_KINDS = frozenset({"restore", "import"})
ROW_FIELDS = ("identifier", "resource_type", "region", "account_id", "created_at", "last_modified")

# The shapes the store writes (the pydantic models of ``state.model``, checked by exact JSON
# type; absent fields take the models' defaults). A value of another type sends the listing to
# the full read, which refuses or reports it.
# A field's allowed types are a frozenset of JSON types, or a dict with ``dict`` mapped to the
# shape of a nested object (and any other allowed type mapped to True).
_TEXT = frozenset({str, type(None)})
_OBJECT = frozenset({dict, type(None)})
_LIST = frozenset({list, type(None)})
DRIFT_SHAPE: dict[str, Any] = {
    "last_checked": _TEXT,
    "drift_detected": frozenset({bool}),
    "status": _TEXT,
}
DEPENDENCIES_SHAPE = {"depends_on": frozenset({list}), "dependents": frozenset({list})}
RESOURCE_SHAPE: dict[str, Any] = {
    "resource_type": frozenset({str}),
    "identifier": frozenset({str}),
    **dict.fromkeys(("region", "account_id", "created_at", "last_modified", "managed_by"), _TEXT),
    "current_properties": frozenset({dict}),
    "lineage": frozenset({list}),
    "drift_status": {dict: DRIFT_SHAPE},
    "dependencies": {dict: DEPENDENCIES_SHAPE},
}
CHANGE_SHAPE: dict[str, Any] = {
    "identifier": frozenset({str}),
    "resource_type": frozenset({str}),
    "operation": frozenset({str}),
    "outcome": frozenset({str}),
    **dict.fromkeys(
        ("region", "account_id", "managed_by", "explanation", "user_intent", "request_token"),
        _TEXT,
    ),
    "rolled_back_to": _TEXT,
    **dict.fromkeys(
        ("properties_before", "properties_after", "checkov_results", "error", "reconciled"),
        _OBJECT,
    ),
    "patch_document": _LIST,
    "drift_status": {dict: DRIFT_SHAPE, type(None): True},
    "dependencies": {dict: DEPENDENCIES_SHAPE, type(None): True},
}
PRINCIPAL_SHAPE = dict.fromkeys(("user", "aws_session", "authenticated_user", "host"), _TEXT)
COMMIT_SHAPE: dict[str, Any] = {
    "serial": frozenset({int}),
    "parent": frozenset({int}),
    "lineage": frozenset({str}),
    "committed_at": frozenset({str}),
    "principal": {dict: PRINCIPAL_SHAPE},
    **dict.fromkeys(("execution_token", "explanation", "user_intent"), _TEXT),
    "kind": frozenset({str}),
    "restored_from": frozenset({int, type(None)}),
    "forced": frozenset({bool}),
    "changes": frozenset({list}),
    "stacks": frozenset({list}),
    "replace_state": _OBJECT,
    "fence": frozenset({int, type(None)}),
    "indexed": _OBJECT,
}
RESOURCE_REQUIRED = frozenset({"resource_type", "identifier"})
COMMIT_REQUIRED = frozenset({"serial", "parent", "lineage", "committed_at"})
CHANGE_REQUIRED = frozenset({"identifier", "resource_type", "operation"})
STACK_CHANGE_SHAPE = {"name": frozenset({str}), "stack": _OBJECT}
SNAPSHOT_SHAPE: dict[str, Any] = {
    "serial": frozenset({int}),
    "lineage": frozenset({str}),
    "created": frozenset({str}),
    "last_updated": frozenset({str}),
    "total_operations": frozenset({int}),
    "resources": frozenset({dict}),
    "stacks": frozenset({dict}),
    "history_index": frozenset({dict}),
    "last_touched": frozenset({dict}),
    "fences": frozenset({dict}),
    "fence_all": frozenset({int}),
    "fenced_out": frozenset({list}),
    "pending": frozenset({dict}),
    "pending_new": frozenset({list}),
}
SNAPSHOT_REQUIRED = frozenset(
    {
        "serial",
        "lineage",
        "created",
        "last_updated",
        "total_operations",
        "resources",
        "stacks",
    }
)
# What each format adds to the fields both require.
SNAPSHOT_REQUIRED_BY_FORMAT = {
    SNAPSHOT_FORMAT: SNAPSHOT_REQUIRED | {"last_touched"},
    SNAPSHOT_FORMAT_V3: SNAPSHOT_REQUIRED | {"last_touched"},
    SNAPSHOT_FORMAT_V2: SNAPSHOT_REQUIRED | {"history_index"},
}

HeadWitness = Callable[[], Awaitable[tuple[int, str] | tuple[int, str, str | None] | None]]
Row = dict[str, str | None]


class Unsure(Exception):
    """The light read cannot vouch for the answer; the full read must decide."""


@dataclass
class Listing:
    serial: int = 0
    lineage: str = ""
    # By state key, as ``StateView.resources``: identifier, type, region, account, times, drift.
    rows: dict[str, Row] = field(default_factory=dict)
    fences: dict[str, int] = field(default_factory=dict)
    fence_all: int = 0


async def light_listing(
    objects: ObjectStore, workspace: str, *, head_witness: HeadWitness | None = None
) -> Listing | None:
    """The resources at head, or None when only the full read may answer (see the module)."""
    try:
        return await _Reader(objects, workspace).read(head_witness)
    except Unsure as doubt:
        log.debug("light listing not used: %s", doubt)
        return None


def _canonical_sha256(value: Any) -> str:
    body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def _unsealed(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Unsure(f"{where} is not JSON") from exc
    if not isinstance(data, dict):
        raise Unsure(f"{where} is not an object")
    stored = data.pop("sha256", None)
    if not isinstance(stored, str) or not _digest_matches(raw, data, stored):
        raise Unsure(f"{where} does not match its digest")
    data["sha256"] = stored
    return data


def _digest_matches(raw: bytes, data: dict[str, Any], stored: str) -> bool:
    """Whether ``stored`` is the sha256 of ``data``'s canonical JSON. A snapshot is written
    compact with sorted keys, so when it has no escapes its bytes without the ``sha256``
    member are that JSON already, and hashing them spares re-serializing 10,000 resources
    (a mismatch there proves nothing: the canonical form decides)."""
    if raw[:2] == b'{"' and b"\\u" not in raw:
        member = b',"sha256":"' + stored.encode() + b'"'
        if (
            raw.count(member) == 1
            and hashlib.sha256(raw.replace(member, b"")).hexdigest() == stored
        ):
            return True
    return stored == _canonical_sha256(data)


def _check_shape(
    value: Any, shape: dict[str, Any], where: str, *, required: frozenset[str] = frozenset()
) -> None:
    """``value`` is an object whose fields named in ``shape`` have one of its JSON types (or,
    for a nested shape, are objects of that shape) and that has the ``required`` ones; other
    fields are not looked at."""
    if type(value) is not dict:
        raise Unsure(f"{where}: not an object")
    if not value.keys() >= required:
        raise Unsure(f"{where} lacks one of {', '.join(sorted(required))}")
    for name, item in value.items():
        allowed = shape.get(name)
        if allowed is None:
            continue
        kind = type(item)
        if kind not in allowed:
            raise Unsure(f"{where}.{name}: {kind.__name__} is not what the store writes")
        if kind is dict and type(allowed) is dict:
            _check_shape(item, allowed[dict], f"{where}.{name}")


def _text(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise Unsure(f"{where}: {value!r} is not text")


def _required_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise Unsure(f"{where}: {value!r} is not text")
    return value


def _integer(value: Any, where: str) -> int:
    if type(value) is not int:
        raise Unsure(f"{where}: {value!r} is not an integer")
    return value


def _drift_of(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unsure(f"{where}: drift_status is not an object")
    return _text(value.get("status"), where)


class _Reader:
    def __init__(self, objects: ObjectStore, workspace: str) -> None:
        self.objects = objects
        self.log_prefix = f"{workspace}/log/"
        self.snap_prefix = f"{workspace}/snapshots/"
        self.pointer_key = f"{workspace}/_last_snapshot.json"
        self.read_sha256: dict[int, str] = {}  # serial -> sha256 of each commit read

    async def read(self, head_witness: HeadWitness | None) -> Listing:
        listing = await self._start()
        while True:
            commit = await self._commit(listing.serial + 1)
            if commit is None:
                break
            _apply(listing, commit)
        await self._nothing_beyond(listing.serial)
        if head_witness is not None:
            witnessed = await head_witness()
            if witnessed is not None:
                self._check_witness(witnessed, listing)
        return listing

    def _check_witness(self, witnessed: tuple[Any, ...], listing: Listing) -> None:
        """As the store's load: the log reaches the witnessed head, and a commit read here at
        the head file's serial is the one that machine wrote."""
        serial, lineage, *sealed = witnessed
        if serial > listing.serial:
            raise Unsure("the readable export claims a later head")
        read = self.read_sha256.get(serial)
        if sealed and sealed[0] and read and read != sealed[0] and lineage == listing.lineage:
            raise Unsure("the head file names another commit at its serial")

    def _key(self, prefix: str, serial: int) -> str:
        return f"{prefix}{serial:0{SERIAL_WIDTH}d}.json"

    async def _commit(self, serial: int) -> dict[str, Any] | None:
        key = self._key(self.log_prefix, serial)
        obj = await self.objects.get(key)
        if obj is None:
            return None
        commit = _unsealed(obj.body, key)
        self.read_sha256[serial] = commit["sha256"]
        if commit.get("format") != COMMIT_FORMAT or commit.get("serial") != serial:
            raise Unsure(f"{key} has another format or serial")
        _check_shape(commit, COMMIT_SHAPE, key, required=COMMIT_REQUIRED)
        for change in commit.get("changes", []):
            _check_shape(change, CHANGE_SHAPE, f"{key}: a change", required=CHANGE_REQUIRED)
        for stack in commit.get("stacks", []):
            _check_shape(stack, STACK_CHANGE_SHAPE, f"{key}: a stack change")
        return commit

    async def _start(self) -> Listing:
        """The snapshot the pointer names, checked as the store checks it; no pointer and no
        snapshot at all: the log from its start."""
        pointer = await self.objects.get(self.pointer_key)
        if pointer is None:
            if await self.objects.list_keys(self.snap_prefix):
                raise Unsure("snapshots without a pointer")
            return Listing()
        data = _unsealed(pointer.body, self.pointer_key)
        if data.get("format") != POINTER_FORMAT:
            raise Unsure("the pointer has another format")
        serial = _integer(data.get("serial"), self.pointer_key)
        key = self._key(self.snap_prefix, serial)
        obj = await self.objects.get(key)
        if obj is None:
            raise Unsure(f"{key} is absent")
        snapshot = _unsealed(obj.body, key)
        covers = snapshot.get("covers")
        known = snapshot.get("format") in SNAPSHOT_REQUIRED_BY_FORMAT
        if not known or not isinstance(covers, dict):
            raise Unsure(f"{key} has another format")
        if snapshot.get("serial") != serial or covers.get("serial") != serial:
            raise Unsure(f"{key} claims another serial")
        covered = await self._commit(serial)
        if covered is None or covered["sha256"] != covers.get("commit_sha256"):
            raise Unsure(f"{key} covers another commit than the log's")
        return _from_snapshot(snapshot, key)

    async def _nothing_beyond(self, head: int) -> None:
        after = self._key(self.log_prefix, head)
        for key in await self.objects.list_keys(self.log_prefix, start_after=after):
            name = key[len(self.log_prefix) :]
            stem = name.removesuffix(".json")
            if name.endswith(".json") and len(stem) == SERIAL_WIDTH and stem.isdigit():
                raise Unsure(f"commit {key} lies beyond serial {head}")


def _from_snapshot(data: dict[str, Any], where: str) -> Listing:
    required = SNAPSHOT_REQUIRED_BY_FORMAT[data["format"]]
    _check_shape(data, SNAPSHOT_SHAPE, where, required=required)
    resources, fences = data["resources"], data.get("fences", {})
    for key, serials in data.get("history_index", {}).items():
        if not isinstance(serials, list) or not all(type(s) is int for s in serials):
            raise Unsure(f"{where}: history_index[{key!r}] is not a list of serials")
    for key, serial in data.get("last_touched", {}).items():
        if type(serial) is not int:
            raise Unsure(f"{where}: last_touched[{key!r}] is not a serial")
    for key, stack in data["stacks"].items():
        if not isinstance(stack, dict):
            raise Unsure(f"{where}: stack {key!r} is not an object")
    rows = {}
    for key, res in resources.items():
        _check_shape(res, RESOURCE_SHAPE, f"{where}: resource {key!r}", required=RESOURCE_REQUIRED)
        row: Row = {name: _text(res.get(name), where) for name in ROW_FIELDS}
        if row["identifier"] is None or row["resource_type"] is None:
            raise Unsure(f"{where}: resource {key!r} lacks its identifier or type")
        row["drift"] = _drift_of(res.get("drift_status"), where)
        rows[key] = row
    return Listing(
        serial=_integer(data.get("serial"), where),
        lineage=_required_text(data.get("lineage"), where),
        rows=rows,
        fences={k: _integer(v, where) for k, v in fences.items()},
        fence_all=_integer(data.get("fence_all", 0), where),
    )


def _apply(listing: Listing, commit: dict[str, Any]) -> None:
    """``replay.apply_commit`` for the listed fields (the same order of rules)."""
    where = f"commit {commit['serial']}"
    lineage = _required_text(commit.get("lineage"), where)
    if listing.serial and lineage != listing.lineage:
        raise Unsure(f"{where} belongs to another lineage")
    if commit.get("replace_state") is not None:
        raise Unsure(f"{where} replaces the whole state")
    changes = commit.get("changes", [])
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise Unsure(f"{where}: changes are not a list of objects")
    at = _required_text(commit.get("committed_at"), where)
    fence = commit.get("fence")
    if fence is not None:
        fence = _integer(fence, where)
    whole = commit.get("kind", "change") in WHOLE_WORKSPACE_KINDS
    ids = [_required_text(c.get("identifier"), where) for c in changes]
    if listing.serial == 0:
        listing.lineage = lineage
    listing.serial = commit["serial"]
    if fence is not None:
        floor = (
            max([listing.fence_all, *listing.fences.values()])
            if whole
            else max([listing.fence_all, *(listing.fences.get(i, 0) for i in ids)])
        )
        if fence < floor:
            return  # fenced out: as if void
        if whole:
            listing.fence_all = max(listing.fence_all, fence)
        for identifier in ids:
            listing.fences[identifier] = max(listing.fences.get(identifier, 0), fence)
    for change in changes:
        _apply_change(listing.rows, change, at, where)


def _apply_change(rows: dict[str, Row], change: dict[str, Any], at: str, where: str) -> None:
    identifier = change["identifier"]
    resource_type = _required_text(change.get("resource_type"), where)
    operation = _required_text(change.get("operation"), where)
    outcome = change.get("outcome", "SUCCESS")
    if outcome not in ("SUCCESS", "FAILED"):
        raise Unsure(f"{where}: outcome {outcome!r}")
    after = change.get("properties_after")
    if after is not None and not isinstance(after, dict):
        raise Unsure(f"{where}: properties_after is not an object")
    region, account = _text(change.get("region"), where), _text(change.get("account_id"), where)
    drift = change.get("drift_status")
    drift_status = _drift_of(drift, where)
    existing = rows.get(identifier)
    if outcome != "SUCCESS":
        if existing is not None:
            existing["last_modified"] = at
        return
    if drift is not None and existing is not None:
        existing["drift"] = drift_status
    if operation == "drift_check":
        return
    if operation in REMOVING_OPERATIONS or (operation in ("restore", "rollback") and after is None):
        rows.pop(identifier, None)
        return
    if after is None:
        return
    if existing is None:
        existing = {name: None for name in ROW_FIELDS}
        existing.update(identifier=identifier, created_at=at, drift=None)
        rows[identifier] = existing
    existing["resource_type"] = resource_type
    existing["region"] = region or existing["region"]
    existing["account_id"] = account or existing["account_id"]
    existing["last_modified"] = at
