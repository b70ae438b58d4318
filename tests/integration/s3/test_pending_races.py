"""The pending-index protocol on S3 (moto over HTTP): a long-lived server and CLI commands
commit at the same time, with real conditional writes on the indexes; every history (the
server's warm one, a cold one, the export, past views) stays the log's."""

from __future__ import annotations

import asyncio

from ccstate.backends.base import Backend

from tests.integration.s3.test_store import ALICE, bucket_change
from tests.unit.store.test_indexes import histories, replayed_history

EVERY = 5
IDS = [f"k{n}" for n in range(4)]


async def test_a_server_and_cli_commands_committing_at_once_keep_every_history(
    backend: Backend,
) -> None:
    server = backend.state_store(snapshot_every=EVERY)
    for round_ in range(6):
        version = round_ + 1
        commits = [server.commit([bucket_change(IDS[round_ % 4], version)], ALICE)]
        for n in range(3):  # CLI commands: each one a fresh store
            cli = backend.state_store(snapshot_every=EVERY)
            commits.append(cli.commit([bucket_change(IDS[(round_ + n + 1) % 4], version)], ALICE))
        for result in await asyncio.gather(*commits, return_exceptions=True):
            assert not isinstance(result, BaseException) or "Conflict" in str(result), result
        await server.history(IDS[round_ % 4])  # the server reads (and caches) between rounds

    expected = await replayed_history(backend.state_store(snapshot_every=EVERY))
    assert await histories(server, IDS) == expected
    for identifier in IDS:
        cold = backend.state_store(snapshot_every=EVERY)
        assert await cold.history(identifier) == expected[identifier]
    loaded = backend.state_store(snapshot_every=EVERY)
    doc = await loaded.export_document()
    assert {k: r.lineage for k, r in doc.resources.items()} == expected
    head = await loaded.head()
    for serial in range(1, head + 1):
        past = await server.materialize(serial)
        then = await replayed_history(loaded, serial)
        assert {k: r.lineage for k, r in past.resources.items()} == {
            k: then[k] for k in past.resources
        }, serial
    assert server.integrity_warnings == [] and loaded.integrity_warnings == []


async def test_a_server_does_not_answer_from_an_index_it_cached_before_a_cli_merged_into_it(
    backend: Backend,
) -> None:
    """The server caches k0's index; after the next snapshot a CLI command merges k0's pending
    serials into it (a conditional PUT) and names them; the server replays that note."""
    server = backend.state_store(snapshot_every=EVERY)
    for n in range(EVERY):
        await server.commit([bucket_change("k0", n)], ALICE)  # snapshot 5: k0 pending
    await server.commit([bucket_change("k1", 0)], ALICE)  # 6 merges k0's 1..5
    await server.history("k0")  # cached as it is now
    for n in range(EVERY - 1):
        await server.commit([bucket_change("k0", EVERY + n)], ALICE)  # 7..10, snapshot 10
    for n in range(3):
        await backend.state_store(snapshot_every=EVERY).commit(
            [bucket_change(f"cli{n}", 0)], ALICE
        )  # merge k0's 7..10
    await server.commit([bucket_change("k0", 99)], ALICE)
    expected = await replayed_history(backend.state_store(snapshot_every=EVERY))
    assert [e.serial for e in await server.history("k0")] == [e.serial for e in expected["k0"]]
