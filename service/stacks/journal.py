"""The durable record of a stack operation: its plan and its progress, in the backend.

Written before each step (a create or delete about to be asked of the cloud is ``pending``)
and after it (``created``), so a process that dies mid-way leaves enough to finish the job:
``StackOperations.recover`` rolls back from it. One object per stack, overwritten as the
operation goes (only the stack's lock holder writes it); the events are kept with it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ccstate.service.ports import ObjectStore
from ccstate.service.state.model import utc_now_iso

IN_PROGRESS = {
    "CREATE_IN_PROGRESS",
    "ROLLBACK_IN_PROGRESS",
    "DELETE_IN_PROGRESS",
    "UPDATE_IN_PROGRESS",
    "UPDATE_ROLLBACK_IN_PROGRESS",
    "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
}
# Not running, but not finished either: ``recover`` finishes it (an update's cleanup).
UNFINISHED = IN_PROGRESS | {"UPDATE_COMPLETE_CLEANUP_FAILED"}


@dataclass
class StackEvent:
    timestamp: str
    logical_id: str
    status: str
    resource_type: str = ""
    identifier: str = ""
    reason: str = ""


@dataclass
class Journal:
    stack: str
    operation: str  # create | update | destroy
    status: str
    template: dict[str, Any]
    user_intent: str = ""
    plan_digest: str = ""
    plan_token: str = ""  # "sha256:<hash>" of the plan token this operation used
    holder_host: str = ""
    holder_pid: int = 0
    created: dict[str, dict[str, str]] = field(default_factory=dict)  # logical -> type, id
    pending: dict[str, str] = field(default_factory=dict)  # logical -> type
    order: list[str] = field(default_factory=list)  # logical ids in the order created
    events: list[dict[str, Any]] = field(default_factory=list)
    # An update: its target template, the resources before it, its steps (each with what
    # undoes it) and, once applied, the old resources left to delete (service.stacks.update).
    update: dict[str, Any] = field(default_factory=dict)
    previous_template: dict[str, Any] | None = None  # before the last update: a rollback

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS

    @property
    def unfinished(self) -> bool:
        return self.status in UNFINISHED

    def event(self, logical_id: str, status: str, **extra: str) -> StackEvent:
        event = StackEvent(utc_now_iso(), logical_id, status, **extra)
        self.events.append(asdict(event))
        return event


@dataclass
class _Writes:
    """Group commit of one stack's journal: the saves asked for and the last one written."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    asked: int = 0
    written: int = 0
    written_of: int = 0  # id() of the Journal object last written


class JournalStore:
    def __init__(self, objects: ObjectStore, workspace: str) -> None:
        self.objects = objects
        self.workspace = workspace
        self._writes: dict[str, _Writes] = {}

    def key(self, stack: str) -> str:
        return f"{self.workspace}/stacks/{stack}/journal.json"

    async def load(self, stack: str) -> Journal | None:
        found = await self.objects.get(self.key(stack))
        if found is None:
            return None
        return Journal(**json.loads(found.body))

    async def save(self, journal: Journal) -> None:
        """Durable when it returns, with every change made to ``journal`` before the call.

        Parallel steps of one run save one after the other, as a group commit: the whole
        journal is one object, so a write that began after this call covers it, and the saves
        asked for while one write runs share the next one (ten steps finishing together cost
        two writes, not ten in a row)."""
        key = self.key(journal.stack)
        writes = self._writes.setdefault(key, _Writes())
        writes.asked += 1
        mine = writes.asked
        async with writes.lock:
            if writes.written >= mine and writes.written_of == id(journal):
                return  # written while we waited, changes and all
            covering = writes.asked
            # vars(), not asdict(): asdict deep-copies the template and every event
            body = json.dumps(vars(journal), sort_keys=True).encode()
            await self.objects.put(key, body)
            writes.written, writes.written_of = covering, id(journal)

    async def names(self) -> list[str]:
        prefix = f"{self.workspace}/stacks/"
        keys = await self.objects.list_keys(prefix)
        return sorted(
            {k[len(prefix) :].split("/", 1)[0] for k in keys if k.endswith("journal.json")}
        )
