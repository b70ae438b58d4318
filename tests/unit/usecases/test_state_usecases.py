"""The state use cases (``service.state.usecases``) in-process: import, restore, load, history."""

from __future__ import annotations

from pathlib import Path

import pytest
from ccstate.backends.memory import MemoryObjectStore
from ccstate.mcp_server.wording import MCP_WORDS
from ccstate.service.errors import InvalidInput, NotFound, ReadOnlyMode

from ccstate.wording import CLI_WORDS
from tests.unit.usecases.conftest import ALICE, BOB, BUCKET, World, build_world


async def test_import_records_the_resource_for_the_principal_of_the_request(
    world: World,
) -> None:
    await world.cloud.create_resource(BUCKET, {"BucketName": "legacy"}, client_token="x")

    imported = await world.state_tools.import_resource(
        BOB, resource_type=BUCKET, identifier="legacy", user_intent="adopt it"
    )

    entry = (await world.store.history("legacy"))[-1]
    assert imported.commit.serial == await world.store.head()
    assert entry.operation == "import"
    assert entry.user == "bob"
    assert entry.user_intent == "adopt it"
    assert world.cloud.calls["create_resource"] == 1  # nothing changed in AWS


async def test_a_second_import_is_refused_with_each_face_naming_its_own_next_step(
    world: World,
) -> None:
    await world.cloud.create_resource(BUCKET, {"BucketName": "legacy"}, client_token="x")
    await world.state_tools.import_resource(
        ALICE, resource_type=BUCKET, identifier="legacy", user_intent="adopt it"
    )

    with pytest.raises(InvalidInput) as again:
        await world.state_tools.import_resource(
            ALICE, resource_type=BUCKET, identifier="legacy", user_intent="adopt it"
        )

    assert "show_resource_history" in again.value.to_dict(MCP_WORDS)["next_step"]
    assert "show_resource_history" not in again.value.to_dict()["next_step"]


async def test_restore_makes_the_record_equal_to_an_earlier_version(world: World) -> None:
    await world.cloud.create_resource(BUCKET, {"BucketName": "a"}, client_token="x")
    await world.cloud.create_resource(BUCKET, {"BucketName": "b"}, client_token="y")
    await world.state_tools.import_resource(
        ALICE, resource_type=BUCKET, identifier="a", user_intent="adopt a"
    )
    first = await world.store.head()
    await world.state_tools.import_resource(
        ALICE, resource_type=BUCKET, identifier="b", user_intent="adopt b"
    )

    restored = await world.state_tools.restore(BOB, serial=first, user_intent="undo b")

    assert restored.restored_from == first
    assert {c.identifier for c in restored.commit.changes} == {"b"}
    assert await world.store.get_resource("b") is None
    assert await world.store.get_resource("a") is not None
    versions = await world.state_tools.versions(limit=1)
    assert versions.versions[0].who == "bob"


async def test_a_read_only_server_refuses_state_changes_in_one_policy(tmp_path: Path) -> None:
    world = build_world(MemoryObjectStore(), tmp_path / "locks", readonly=True)

    with pytest.raises(ReadOnlyMode) as restore:
        await world.state_tools.restore(ALICE, serial=0)
    with pytest.raises(ReadOnlyMode) as adopt:
        await world.state_tools.import_resource(
            ALICE, resource_type=BUCKET, identifier="x", user_intent="y"
        )

    assert restore.value.message == "This server is read-only: it refuses restore_state_version."
    assert adopt.value.details["operation"] == "import_resource"
    assert adopt.value.next_step_in(MCP_WORDS) == (
        "Restart the server without --readonly to change the state."
    )


async def test_an_unknown_resource_is_not_found_and_the_next_step_fits_the_face(
    world: World,
) -> None:
    with pytest.raises(NotFound) as missing:
        await world.state_tools.resource("nowhere")

    assert "load_state()" in missing.value.next_step_in(MCP_WORDS)
    assert "`ccstate state list`" in missing.value.next_step_in(CLI_WORDS)
