"""The state store on S3 + DynamoDB: concurrent committers, conflicts, migration, restore,
tampering, and what one commit cycle costs in AWS requests."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from ccstate.backends.aws import RequestCounter
from ccstate.backends.base import Backend
from ccstate.backends.dynamodb_serials import DynamoDBSequencer
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service import errors
from ccstate.service.locking import hold_lock
from ccstate.service.ports import LockScope
from ccstate.service.state.migrate import migrate
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore, serial_key

from tests.integration.s3.conftest import REPO, S3Setup

WORKERS, COMMITS_EACH = 4, 25
ALICE = CommitMeta(principal=Principal(user="alice"), explanation="alice's change")
BOB = CommitMeta(principal=Principal(user="bob"), explanation="bob's change")


def bucket_change(identifier: str, version: int) -> ResourceChange:
    return ResourceChange(
        identifier=identifier,
        resource_type="AWS::S3::Bucket",
        operation="create" if version == 0 else "update",
        region="us-east-1",
        properties_before=None if version == 0 else {"BucketName": identifier, "V": version - 1},
        properties_after={"BucketName": identifier, "V": version},
    )


@pytest.mark.slow
async def test_four_processes_commit_to_one_state_without_losing_anything(
    s3_setup: S3Setup, backend: Backend
) -> None:
    procs = [
        subprocess.Popen(
            s3_setup.worker_command("commit_resources.py", f"w{n}", str(COMMITS_EACH)),
            stdout=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        for n in range(WORKERS)
    ]
    serials_of = {}
    for n, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0
        serials_of[f"w{n}"] = json.loads(out)

    total = WORKERS * COMMITS_EACH
    assert sorted(s for serials in serials_of.values() for s in serials) == list(
        range(1, total + 1)
    )
    store = backend.state_store("default")
    view = await store.current()
    assert view.serial == total
    assert sorted(view.resources) == sorted(
        f"w{n}-{i}" for n in range(WORKERS) for i in range(COMMITS_EACH)
    )
    versions = await store.versions()
    assert [v.serial for v in versions] == list(range(total, 0, -1))
    for name, serials in serials_of.items():
        assert {v.who for v in versions if v.serial in serials} == {name}
    assert await backend.locks.list_locks("default") == []


async def test_same_resource_conflicts_and_different_resources_both_land(
    s3_setup: S3Setup,
) -> None:
    first, second = await s3_setup.open(), await s3_setup.open()
    try:
        alice, bob = first.state_store(), second.state_store()
        await alice.commit([bucket_change("shared", 0)], ALICE)
        base = await bob.head()

        await alice.commit([bucket_change("shared", 1)], ALICE)
        with pytest.raises(errors.StateConflict) as conflict:
            await bob.commit([bucket_change("shared", 1)], BOB, base_serial=base)
        landed = await bob.commit([bucket_change("bobs-own", 0)], BOB, base_serial=base)

        assert "shared" in str(conflict.value) and "alice" in str(conflict.value)
        assert landed.serial == 3
        view = await first.state_store().current()
        assert sorted(view.resources) == ["bobs-own", "shared"]
        assert view.resources["shared"].current_properties["V"] == 1
    finally:
        await first.close()
        await second.close()


async def test_migration_round_trip_local_s3_local(backend: Backend, tmp_path: Path) -> None:
    source = LocalObjectStore(tmp_path / "before")
    local = StateStore(source, snapshot_every=2)
    for version in range(3):
        await local.commit([bucket_change("kept", version)], ALICE)
    await local.commit([bucket_change("other", 0)], BOB)
    original = await local.export_document()
    phases: list[str] = []

    to_s3 = await migrate(source, backend.objects, progress=lambda p, d, t: phases.append(p))
    back = LocalObjectStore(tmp_path / "after")
    to_local = await migrate(backend.objects, back)

    assert (to_s3.serial, to_s3.serials_verified) == (4, 4)
    assert to_s3.target.startswith("s3://") and set(phases) == {"copy", "verify"}
    assert to_local.objects_copied == to_s3.objects_copied
    for store in (backend.state_store(), StateStore(back)):
        assert (await store.export_document()).model_dump() == original.model_dump()
        assert [v.serial for v in await store.versions()] == [4, 3, 2, 1]
    with pytest.raises(errors.InvalidInput, match="already has a state"):
        await migrate(source, backend.objects)


async def test_restore_on_s3_is_recorded_as_a_new_commit(backend: Backend) -> None:
    store = backend.state_store()
    await store.commit([bucket_change("b", 0)], ALICE)
    await store.commit([bucket_change("b", 1)], ALICE)
    await store.commit([bucket_change("c", 0)], ALICE)

    restored = await store.restore(1, BOB)

    assert (restored.serial, restored.kind, restored.restored_from) == (4, "restore", 1)
    fresh = backend.state_store()
    view = await fresh.current()
    assert sorted(view.resources) == ["b"]
    assert view.resources["b"].current_properties["V"] == 0
    assert [v.kind for v in await fresh.versions()] == ["restore", "change", "change", "change"]


@pytest.mark.parametrize("metadata_too", [False, True], ids=["body-only", "body-and-sha256"])
async def test_tampered_commit_object_is_rejected_on_load(
    s3_setup: S3Setup, backend: Backend, metadata_too: bool
) -> None:
    store = backend.state_store()
    await store.commit([bucket_change("b", 0)], ALICE)
    await store.commit([bucket_change("b", 1)], ALICE)
    key = f"{s3_setup.prefix}/{serial_key('default/log/', 1)}"
    s3 = s3_setup.client("s3")
    stored = s3.get_object(Bucket=s3_setup.bucket, Key=key)
    body = stored["Body"].read().replace(b'"alice"', b'"mallory"')
    metadata = stored["Metadata"]
    if metadata_too:  # someone with write access who knows about the header
        metadata = {"sha256": hashlib.sha256(body).hexdigest()}
    s3.put_object(Bucket=s3_setup.bucket, Key=key, Body=body, Metadata=metadata)

    with pytest.raises(errors.IntegrityError) as rejected:
        await backend.state_store().current()
    assert "00000000000000000001.json" in str(rejected.value)


async def test_a_resource_commit_cycle_costs_four_requests(backend: Backend) -> None:
    store = backend.state_store()
    await store.commit([bucket_change("warm-up", 0)], ALICE)
    counter = RequestCounter().attach_backend(backend)

    async with hold_lock(backend.locks, LockScope("default", "b"), operation="t", who="me"):
        await store.commit([bucket_change("b", 0)], ALICE, under_lock=True)

    # lock (with its fencing token, in the same transaction), take a serial, write the
    # commit, unlock: Terraform's S3 backend spends 7 requests on the same cycle (and has no
    # fencing). Under the lock nothing of other writers' needs reading.
    assert counter.calls == [
        "dynamodb.TransactWriteItems",
        "dynamodb.UpdateItem",
        "s3.PutObject",
        "dynamodb.DeleteItem",
    ]


async def test_a_commit_without_the_lock_first_checks_for_newer_commits(
    backend: Backend,
) -> None:
    store = backend.state_store()
    await store.commit([bucket_change("warm-up", 0)], ALICE)
    counter = RequestCounter().attach_backend(backend)

    await store.commit([bucket_change("b", 0)], ALICE)

    # how far the log goes (nothing new), a serial, the commit
    assert counter.calls == ["dynamodb.GetItem", "dynamodb.UpdateItem", "s3.PutObject"]


async def test_a_serial_taken_by_a_writer_that_died_is_voided_and_the_log_goes_on(
    backend: Backend,
) -> None:
    store = backend.state_store()
    await store.commit([bucket_change("before", 0)], ALICE)
    assert backend.sequencer is not None
    died_holding = await backend.sequencer.next_serial("default")  # then SIGKILL, say
    after = await store.commit([bucket_change("after", 0)], BOB, under_lock=True)

    reader = backend.state_store(hole_grace=0.2)
    view = await reader.current()

    assert (died_holding, after.serial, view.serial) == (2, 3, 3)
    assert sorted(view.resources) == ["after", "before"]
    assert [v.kind for v in await reader.versions()] == ["change", "void", "change"]
    assert await backend.locks.list_locks("default") == []  # the counter is not a lock


async def test_asking_for_a_serial_again_with_the_same_ticket_gets_the_same_serial(
    backend: Backend,
) -> None:
    sequencer = backend.sequencer
    assert isinstance(sequencer, DynamoDBSequencer)

    first = await sequencer.take("default", "ticket-a")
    again = await sequencer.take("default", "ticket-a")  # a retry whose answer was lost
    other = await sequencer.take("default", "ticket-b")

    assert (first, again, other) == (1, 1, 2)
    assert await sequencer.current("default") == 2
