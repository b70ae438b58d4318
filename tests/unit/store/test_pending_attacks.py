"""Attacks on the pending-index protocol (S3: a sequencer): several stores, stale caches and
views, writers dying between steps, hostile notes. Every history read must stay the log's."""

from __future__ import annotations

from ccstate.service.state.store import StateStore

from .helpers import change, meta
from .test_indexes import histories, replayed_history
from .test_pending_indexes import EVERY, Shared


async def test_a_long_lived_store_sees_serials_another_store_merged_into_an_index_it_cached() -> (
    None
):
    """A server caches r0's index; a CLI command after the next snapshot merges r0's pending
    serials into it and names them; the server replays that note (they are no longer its to
    index) and must not answer r0's history from its older copy of the index."""
    state = Shared()
    server = state.store()
    for n in range(EVERY):
        await server.commit([change("r0", "update", V=n)], meta())  # snapshot 10: r0 pending
    await server.commit([change("x0")], meta())  # 11: merges r0's 1..10
    assert await state.index("r0") == list(range(1, EVERY + 1))
    await server.history("r0")  # caches the index as it is now
    for n in range(EVERY - 1):
        await server.commit([change("r0", "update", V=100 + n)], meta())  # 12..20
    assert (await state.snapshot(2 * EVERY))["pending"]["r0"] == list(range(12, 21))
    for n in range(3):  # cold committers merge the pending serials
        await state.store().commit([change(f"y{n}")], meta())
    assert await state.index("r0") == [*range(1, EVERY + 1), *range(12, 21)]
    await server.commit([change("r0", "update", V=999)], meta())  # the server replays the notes
    expected = await replayed_history(state.store())
    assert await histories(server, ["r0"]) == {"r0": expected["r0"]}
    assert server.integrity_warnings == []
