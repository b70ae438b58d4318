"""The log proves its own completeness on S3 + DynamoDB (moto over HTTP, versioned bucket):
a deleted commit is corruption, never voided; edited and swapped commits and snapshots are
found; a far jump of the serial counter is refused (issue 11, items 3 and 4)."""

from __future__ import annotations

import hashlib
import json

import pytest
from ccstate.backends.base import Backend
from ccstate.backends.dynamodb_serials import DynamoDBSequencer
from ccstate.service import errors
from ccstate.service.state.codec import serial_key

from tests.integration.s3.conftest import S3Setup
from tests.integration.s3.test_store import ALICE, bucket_change


def full_key(s3_setup: S3Setup, key: str) -> str:
    return f"{s3_setup.prefix}/{key}"


async def commit_n(backend: Backend, n: int, **kw) -> None:
    store = backend.state_store(**kw)
    for i in range(n):
        await store.commit([bucket_change(f"b{i}", 0)], ALICE, under_lock=True)


async def log_serials(backend: Backend) -> list[int]:
    keys = await backend.objects.list_keys("default/log/")
    return [int(k.rsplit("/", 1)[-1][:-5]) for k in keys]


@pytest.mark.parametrize("deleted", [2, 4])
async def test_a_deleted_commit_is_reported_and_never_voided(
    s3_setup: S3Setup, backend: Backend, deleted: int
) -> None:
    """Before: `state list` waited 32 s and wrote a void over the deleted commit (middle), or
    the state silently lost its newest commit (head)."""
    await commit_n(backend, 4)
    s3 = s3_setup.client("s3")
    s3.delete_object(
        Bucket=s3_setup.bucket, Key=full_key(s3_setup, serial_key("default/log/", deleted))
    )
    reader = backend.state_store(hole_grace=0.05)
    with pytest.raises(errors.StateCorrupt, match=rf"Commit {deleted} .* was written") as caught:
        await reader.current()
    assert "previous version" in caught.value.next_step
    with pytest.raises(errors.StateCorrupt):
        await backend.state_store(hole_grace=0.05).commit([bucket_change("new", 0)], ALICE)
    assert deleted not in await log_serials(backend)  # no void took its place


async def test_a_ticket_nobody_wrote_is_still_voided(backend: Backend) -> None:
    await commit_n(backend, 1)
    assert backend.sequencer is not None
    await backend.sequencer.next_serial("default")  # its writer died before the put
    await commit_n(backend, 1)
    view = await backend.state_store(hole_grace=0.05).current()
    assert view.serial == 3
    assert [v.kind for v in await backend.state_store().versions()] == ["change", "void", "change"]


def swap_commits(s3_setup: S3Setup, first: int, second: int) -> None:
    s3 = s3_setup.client("s3")
    one, two = (full_key(s3_setup, serial_key("default/log/", s)) for s in (first, second))
    stored = {k: s3.get_object(Bucket=s3_setup.bucket, Key=k) for k in (one, two)}
    bodies = {k: (v["Body"].read(), v["Metadata"]) for k, v in stored.items()}
    for target, source in ((one, two), (two, one)):
        body, metadata = bodies[source]
        s3.put_object(Bucket=s3_setup.bucket, Key=target, Body=body, Metadata=metadata)


async def test_swapped_commits_are_refused(s3_setup: S3Setup, backend: Backend) -> None:
    await commit_n(backend, 3, tail_every=0)  # the load reads every commit from the log
    swap_commits(s3_setup, 1, 2)
    with pytest.raises(errors.StateCorrupt, match="claims serial"):
        await backend.state_store().current()


async def test_commits_swapped_under_the_pointers_tail_are_refused_when_read(
    s3_setup: S3Setup, backend: Backend
) -> None:
    """A load takes the commits of the pointer's tail from the pointer, as it takes the ones
    a snapshot covers from the snapshot (the state is right); whoever reads those serials from
    the log (versions, history, restore) finds the swap."""
    await commit_n(backend, 3)  # the third commit puts 1-3 in the pointer's tail
    swap_commits(s3_setup, 1, 2)
    reader = backend.state_store()
    view = await reader.current()
    assert (view.serial, sorted(view.resources)) == (3, ["b0", "b1", "b2"])
    with pytest.raises(errors.StateCorrupt, match="claims serial"):
        await reader.versions()


async def test_an_edited_snapshot_is_refused_and_the_log_replayed(
    s3_setup: S3Setup, backend: Backend
) -> None:
    await commit_n(backend, 4, snapshot_every=2)
    await backend.state_store(snapshot_every=2).current()  # whoever reads past 4 snapshots it
    key = full_key(s3_setup, serial_key("default/snapshots/", 4))
    s3 = s3_setup.client("s3")
    data = json.loads(s3.get_object(Bucket=s3_setup.bucket, Key=key)["Body"].read())
    data["resources"]["injected"] = dict(data["resources"]["b0"], identifier="injected")
    body = json.dumps(data).encode()
    s3.put_object(
        Bucket=s3_setup.bucket,
        Key=key,
        Body=body,
        Metadata={"sha256": hashlib.sha256(body).hexdigest()},  # past the object's own check
    )
    reader = backend.state_store(snapshot_every=2)
    view = await reader.current()
    assert sorted(view.resources) == ["b0", "b1", "b2", "b3"]
    assert any("00000000000000000004.json" in w for w in reader.integrity_warnings)


async def test_a_far_jump_of_the_serial_counter_is_refused_without_3000_requests(
    backend: Backend,
) -> None:
    """Before: every read made 3000 GETs and writers filled 3000 voids."""
    await commit_n(backend, 2)
    sequencer = backend.sequencer
    assert isinstance(sequencer, DynamoDBSequencer)
    await sequencer.advance_to("default", 3002)
    with pytest.raises(errors.StateCorrupt, match=r"counter .* jumped") as caught:
        await backend.state_store(hole_grace=0.05).current()
    assert "Set the counter back to 2" in caught.value.next_step
    with pytest.raises(errors.StateCorrupt, match="jumped"):
        await backend.state_store().commit([bucket_change("x", 0)], ALICE, under_lock=True)
    assert await log_serials(backend) == [1, 2]


async def test_history_from_the_index_on_s3_matches_the_log_and_survives_an_edit(
    s3_setup: S3Setup, backend: Backend
) -> None:
    """Indexes are written with each snapshot; a cold reader of one resource's history reads
    the pointer, its index and the commits after the pointer, and refuses an edited index."""
    store = backend.state_store(snapshot_every=4)
    for n in range(11):
        await store.commit([bucket_change(f"b{n % 3}", n)], ALICE, under_lock=True)
    await store.current()
    expected = {f"b{i}": await store.history(f"b{i}") for i in range(3)}
    assert [e.serial for e in expected["b1"]] == [2, 5, 8, 11]
    for identifier, entries in expected.items():
        assert await backend.state_store().history(identifier) == entries
    s3 = s3_setup.client("s3")
    from ccstate.service.state.indexes import index_name

    key = full_key(s3_setup, f"default/index/{index_name('b1')}")
    body = json.loads(s3.get_object(Bucket=s3_setup.bucket, Key=key)["Body"].read())
    body["serials"] = body["serials"][1:]
    edited = json.dumps(body).encode()
    s3.put_object(
        Bucket=s3_setup.bucket,
        Key=key,
        Body=edited,
        Metadata={"sha256": hashlib.sha256(edited).hexdigest()},
    )
    reader = backend.state_store()
    assert await reader.history("b1") == expected["b1"]
    assert any("b1" in w for w in reader.integrity_warnings)
