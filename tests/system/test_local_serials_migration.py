"""A local state written before the local sequencer (writers racing for ``head + 1``, no counter
file, no tickets) is read by ``ccstate`` commands and committed to by the new stores, which
start the counter from the log; a store of the old design still reads what they wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ccstate.backends.factory import open_backend
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.local_serials import COUNTER_NAME, TICKET_PREFIX, LocalSequencer
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

CCSTATE = Path(sys.executable).with_name("ccstate")


def ccstate(root: Path, *args: str) -> dict:
    env = {**os.environ, "CCSTATE_BACKEND": str(root)}
    done = subprocess.run(
        [str(CCSTATE), *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def queue(name: str, operation: str = "create", **extra: object) -> ResourceChange:
    return ResourceChange(
        identifier=name,
        resource_type="AWS::SQS::Queue",
        operation=operation,  # type: ignore[arg-type]
        properties_after=None if operation == "delete" else {"QueueName": name, **extra},
    )


def meta(user: str) -> CommitMeta:
    return CommitMeta(principal=Principal(user=user))


async def test_a_state_of_the_race_design_is_read_and_committed_to_by_the_sequenced_one(
    tmp_path: Path,
) -> None:
    root = tmp_path / "state"
    log = root / "default" / "log"
    old = StateStore(LocalObjectStore(root))  # the design before: no sequencer
    await old.commit([queue("a"), queue("b")], meta("old"))
    await old.commit([queue("a", "update", V=2)], meta("old"))
    await old.commit([queue("b", "delete")], meta("old"))
    assert not (log / COUNTER_NAME).exists()

    # The commands that read the state work on it as it is.
    listed = ccstate(root, "state", "list")
    assert [r["identifier"] for r in listed["resources"]] == ["a"]
    history = ccstate(root, "state", "history", "b")
    assert [e["operation"] for e in history["entries"]] == ["create", "delete"]

    # A store opened on the backend (as the CLI and the server open theirs) commits after it:
    # its first load moves the counter past the log.
    backend = await open_backend(str(root))
    try:
        new = backend.state_store()
        landed = await new.commit([queue("c")], meta("new"))
    finally:
        await backend.close()
    assert landed.serial == 4
    assert await LocalSequencer(root).current("default") == 4
    assert not [p for p in log.iterdir() if p.name.startswith(TICKET_PREFIX)]

    # An older ccstate (no sequencer) still reads the log, and the CLI sees the new commit.
    again = await StateStore(LocalObjectStore(root)).current()
    assert again.serial == 4 and sorted(again.resources) == ["a", "c"]
    assert [r["identifier"] for r in ccstate(root, "state", "list")["resources"]] == ["a", "c"]
