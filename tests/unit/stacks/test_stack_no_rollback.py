"""Stack operations with rollback off, in-process (real tokens, state store, journal and locks;
the fake cloud): an update that fails at a middle step stops there (UPDATE_FAILED), with the
journal and the state saying what was done; deploying again finishes it; rollback undoes it;
recover says it was not interrupted; a create with rollback off follows the same rules."""

from __future__ import annotations

import pytest
from ccstate.service.errors import StateConflict, TokenError

from tests.unit.stacks.test_plan_token import recorded
from tests.unit.stacks.test_stack_updates import BUCKET, Stacks, stacks, v1, v2
from tests.unit.usecases.conftest import ALICE

__all__ = ["stacks"]  # the fixture


def names(stacks: Stacks) -> set[str]:
    return {k[1] for k in stacks.cloud.resources}


async def stopped_at_b(stacks: Stacks) -> tuple[dict, object]:
    """v1 deployed, then v2 with B's update refused once, rollback off: A's replacement and C's
    update land (C runs beside A), B fails, N (after B) never starts, R is not removed."""
    await stacks.ops.create(ALICE, "app", v1(), "v1")
    before = stacks.snapshot()
    stacks.fail_on("update", "b-bkt")
    result = await stacks.ops.update(ALICE, "app", v2(), "v2", rollback=False)
    return before, result


async def test_an_update_without_rollback_stops_at_the_failed_step(stacks: Stacks) -> None:
    before, result = await stopped_at_b(stacks)

    assert result.status == "UPDATE_FAILED"
    assert result.reason.startswith("B: ")
    assert "complete: A, C" in result.reason and "not started: N" in result.reason
    assert "not removed: R" in result.reason and "A (a-bkt)" in result.reason
    assert "${stack_rollback} app" in result.next_step
    # what landed is there; nothing else happened; the cleanup did not run
    assert names(stacks) == {"a-bkt", "a2-bkt", "b-bkt", "c-bkt", "r-bkt"}
    assert stacks.cloud.resources[(BUCKET, "c-bkt")]["VersioningConfiguration"] == {
        "Status": "Enabled"
    }
    assert stacks.cloud.resources[(BUCKET, "b-bkt")] == before[(BUCKET, "b-bkt")]
    assert not [c for c in stacks.calls if c[0] == "delete"]
    assert {k: v["identifier"] for k, v in result.resources.items()} == {
        "A": "a2-bkt",
        "B": "b-bkt",
        "C": "c-bkt",
        "R": "r-bkt",
    }
    # each step's outcome, in the events and the journal
    events = [(e["logical_id"], e["status"]) for e in result.events]
    assert ("B", "UPDATE_FAILED") in events and ("app", "UPDATE_FAILED") in events
    assert not [e for e in events if e[0] == "N"]
    failed = next(e for e in result.events if e["status"] == "UPDATE_FAILED")
    assert failed["logical_id"] == "B" and failed["reason"]
    journal = await stacks.ops.journal.load("app")
    assert journal is not None
    outcomes = {n: o["outcome"] for n, o in journal.update["outcomes"].items()}
    assert outcomes == {
        "A": "complete",
        "B": "failed",
        "C": "complete",
        "N": "not started",
        "R": "not started",
    }
    # the state: the stack lists what exists (the replaced old one too), lineage only for
    # what happened
    view = await stacks.world.store.current()
    assert view.stacks["app"].status == "UPDATE_FAILED"
    assert sorted(view.stacks["app"].resources) == ["a-bkt", "a2-bkt", "b-bkt", "c-bkt", "r-bkt"]
    assert sorted(view.resources) == ["a-bkt", "a2-bkt", "b-bkt", "c-bkt", "r-bkt"]
    b_history = await stacks.world.store.history("b-bkt")
    assert [e.operation for e in b_history] == ["create", "update"]
    assert b_history[-1].error and b_history[-1].properties_after is None  # recorded as failed
    assert [e.operation for e in await stacks.world.store.history("c-bkt")] == [
        "create",
        "update",
    ]
    assert [e.operation for e in await stacks.world.store.history("a2-bkt")] == ["create"]
    assert await stacks.locks() == []
    # show gives the failed step's reason
    assert (await stacks.ops.show("app")).reason == result.reason


async def test_recover_says_a_stopped_update_was_not_interrupted(stacks: Stacks) -> None:
    await stopped_at_b(stacks)
    snapshot = stacks.snapshot()

    recovered = await stacks.ops.recover(ALICE, "app")

    assert recovered.status == "UPDATE_FAILED"
    assert recovered.reason.startswith("Nothing to recover")
    assert "${stack_rollback} app" in recovered.next_step
    assert "${stack_deploy}" in recovered.next_step
    assert stacks.snapshot() == snapshot
    with pytest.raises(StateConflict, match="UPDATE_FAILED"):
        await stacks.ops.destroy(ALICE, "app")
    assert stacks.snapshot() == snapshot and await stacks.locks() == []


async def test_deploying_again_finishes_a_stopped_update(stacks: Stacks) -> None:
    await stopped_at_b(stacks)
    plan = await stacks.ops.plan_update("app", v2())
    # planned from what landed: A and C are done
    assert {n: a.action for n, a in plan.actions.items()} == {
        "B": "update",
        "N": "add",
        "R": "remove",
    }
    stacks.calls.clear()

    result = await stacks.ops.deploy(ALICE, "app", v2(), "v2 fixed")

    assert result.status == "UPDATE_COMPLETE", result.reason
    assert names(stacks) == {"a2-bkt", "b-bkt", "c-bkt", "n-bkt"}
    assert ("create", "a2-bkt") not in stacks.calls  # not done twice
    assert sorted(c for c in stacks.calls if c[0] == "delete") == [
        ("delete", "a-bkt"),
        ("delete", "r-bkt"),
    ]
    b = stacks.cloud.resources[(BUCKET, "b-bkt")]
    assert b["LoggingConfiguration"] == {"DestinationBucketName": "a2-bkt"}
    view = await stacks.world.store.current()
    assert sorted(view.stacks["app"].resources) == ["a2-bkt", "b-bkt", "c-bkt", "n-bkt"]
    assert await stacks.locks() == []


async def test_rollback_after_a_stopped_update_restores_the_stack_before_it(
    stacks: Stacks,
) -> None:
    before, _ = await stopped_at_b(stacks)

    result = await stacks.ops.rollback(ALICE, "app")

    assert result.status == "UPDATE_ROLLBACK_COMPLETE", result.reason
    assert stacks.snapshot() == before  # a2 deleted, c patched back, a and r kept
    assert {k: v["identifier"] for k, v in result.resources.items()} == {
        "A": "a-bkt",
        "B": "b-bkt",
        "C": "c-bkt",
        "R": "r-bkt",
    }
    view = await stacks.world.store.current()
    assert sorted(view.stacks["app"].resources) == ["a-bkt", "b-bkt", "c-bkt", "r-bkt"]
    assert sorted(view.resources) == ["a-bkt", "b-bkt", "c-bkt", "r-bkt"]
    assert await stacks.locks() == []
    # and the update can be run again from the start
    assert (await stacks.ops.update(ALICE, "app", v2(), "again")).status == "UPDATE_COMPLETE"


async def test_a_continued_update_that_fails_rolls_back_to_before_the_first_attempt(
    stacks: Stacks,
) -> None:
    before, _ = await stopped_at_b(stacks)
    stacks.fail_on("create", "n-bkt")

    result = await stacks.ops.deploy(ALICE, "app", v2(), "v2 again")  # rollback on

    assert result.status == "UPDATE_ROLLBACK_COMPLETE"
    assert stacks.snapshot() == before
    assert await stacks.locks() == []


async def test_a_stopped_update_stopped_again_keeps_what_landed_twice(stacks: Stacks) -> None:
    before, _ = await stopped_at_b(stacks)
    stacks.fail_on("create", "n-bkt")

    again = await stacks.ops.deploy(ALICE, "app", v2(), "v2 again", rollback=False)

    assert again.status == "UPDATE_FAILED"
    assert again.reason.startswith("N: ") and "complete: B" in again.reason
    assert names(stacks) == {"a-bkt", "a2-bkt", "b-bkt", "c-bkt", "r-bkt"}
    assert stacks.cloud.resources[(BUCKET, "b-bkt")]["LoggingConfiguration"] == {
        "DestinationBucketName": "a2-bkt"
    }
    back = await stacks.ops.rollback(ALICE, "app")  # undoes both attempts
    assert back.status == "UPDATE_ROLLBACK_COMPLETE", back.reason
    assert stacks.snapshot() == before


async def test_a_create_without_rollback_records_what_exists(stacks: Stacks) -> None:
    stacks.fail_on("create", "b-bkt")

    result = await stacks.ops.create(ALICE, "app", v1(), "v1", rollback=False)

    assert result.status == "CREATE_FAILED"
    assert result.reason.startswith("B: ") and "not created (B)" in result.reason
    assert names(stacks) == {"a-bkt", "c-bkt", "r-bkt"}
    assert sorted(result.resources) == ["A", "C", "R"]
    view = await stacks.world.store.current()
    assert view.stacks["app"].status == "CREATE_FAILED"
    assert sorted(view.stacks["app"].resources) == ["a-bkt", "c-bkt", "r-bkt"]
    assert sorted(view.resources) == ["a-bkt", "c-bkt", "r-bkt"]
    failed = [e for e in result.events if e["status"] == "CREATE_FAILED"]
    assert [e["logical_id"] for e in failed] == ["B", "app"] and failed[0]["reason"]
    shown = await stacks.ops.show("app")
    assert shown.reason == result.reason
    recovered = await stacks.ops.recover(ALICE, "app")
    assert recovered.reason.startswith("Nothing to recover") and recovered.next_step
    assert await stacks.locks() == []

    finished = await stacks.ops.deploy(ALICE, "app", v1(), "v1 again")

    assert finished.status == "UPDATE_COMPLETE", finished.reason
    assert names(stacks) == {"a-bkt", "b-bkt", "c-bkt", "r-bkt"}


def v3() -> dict:
    """v2 with A replaced once more (a3): after a stop, A's new resource a2 is replaced too."""
    out = v2()
    out["A"] = v2()["A"] | {"Properties": {**v2()["A"]["Properties"], "BucketName": "a3-bkt"}}
    return out


@pytest.mark.parametrize("fails", [False, True])
async def test_a_continued_update_replacing_again_cleans_up_or_undoes_both(
    stacks: Stacks, fails: bool
) -> None:
    before, _ = await stopped_at_b(stacks)
    if fails:
        stacks.fail_on("create", "n-bkt")

    result = await stacks.ops.deploy(ALICE, "app", v3(), "v3")

    if fails:  # every step of both attempts undone, a2 and a3 deleted
        assert result.status == "UPDATE_ROLLBACK_COMPLETE", result.reason
        assert stacks.snapshot() == before
    else:  # the old a and the intermediate a2 both deleted by the cleanup
        assert result.status == "UPDATE_COMPLETE", result.reason
        assert names(stacks) == {"a3-bkt", "b-bkt", "c-bkt", "n-bkt"}
        b = stacks.cloud.resources[(BUCKET, "b-bkt")]
        assert b["LoggingConfiguration"] == {"DestinationBucketName": "a3-bkt"}
        view = await stacks.world.store.current()
        assert sorted(view.resources) == ["a3-bkt", "b-bkt", "c-bkt", "n-bkt"]
    assert await stacks.locks() == []


# ---------------------------------------------------------------------- with plan tokens


async def test_the_rollback_of_a_stopped_update_runs_under_its_own_plan_token(
    stacks: Stacks,
) -> None:
    before, _ = await stopped_at_b(stacks)
    stopped_id = (await stacks.world.store.current()).stacks["app"].execution_token
    _, update_token = await stacks.ops.preview(ALICE, "app", v2(), "finish")
    assert update_token is not None

    plan, token = await stacks.ops.preview(ALICE, "app", None, "go back", operation="rollback")

    assert token is not None and plan.operation == "undo"
    assert "undo its 3 steps in reverse (B, " in plan.explanation  # A and C ran side by side
    assert "- patch back B (AWS::S3::Bucket b-bkt; its step failed: only what changed)" in (
        plan.explanation
    )
    assert "- delete the new A (AWS::S3::Bucket a2-bkt)" in plan.explanation
    assert stacks.snapshot() != before  # a preview changes nothing
    with pytest.raises(TokenError, match="another plan"):  # the continue's token: not an undo
        await stacks.ops.rollback(ALICE, "app", plan_token=update_token.token)
    result = await stacks.ops.rollback(ALICE, "app", plan_token=token.token)

    assert result.status == "UPDATE_ROLLBACK_COMPLETE", result.reason
    assert stacks.snapshot() == before
    undo_id = (await stacks.world.store.current()).stacks["app"].execution_token
    assert undo_id == recorded(token.token) != stopped_id
    [created, deleted] = await stacks.world.store.history("a2-bkt")
    assert created.execution_token.startswith(f"{stopped_id}#A/create.")
    assert deleted.execution_token.startswith(f"{undo_id}#A/rollback.")
    patched_back = (await stacks.world.store.history("c-bkt"))[-1]
    assert patched_back.execution_token.startswith(f"{undo_id}#C/undo.")
    with pytest.raises(TokenError, match="already used"):
        await stacks.ops.plans.use(ALICE, plan, token.token)


async def test_an_undo_plan_refuses_a_resource_the_stopped_update_did_not_touch(
    stacks: Stacks,
) -> None:
    await stopped_at_b(stacks)
    plan, token = await stacks.ops.preview(ALICE, "app", None, "", operation="rollback")
    assert token is not None
    authority = await stacks.ops.plans.use(ALICE, plan, token.token)

    authority.delete(ALICE, "A", BUCKET, "a2-bkt", "rollback", "x")  # its own step: allowed
    with pytest.raises(TokenError, match="not part of stack app's plan"):
        authority.delete(ALICE, "A", BUCKET, "a-bkt", "rollback", "x")  # the old one stays
    with pytest.raises(TokenError, match="not part of stack app's plan"):
        authority.delete(ALICE, "R", BUCKET, "r-bkt", "rollback", "x")  # no step of R


async def test_a_continued_update_s_plan_token_covers_the_first_attempt_s_cleanup(
    stacks: Stacks,
) -> None:
    await stopped_at_b(stacks)

    plan, token = await stacks.ops.preview(ALICE, "app", v2(), "finish it")

    assert token is not None
    assert [a["logical_id"] for a in plan.actions()] == ["B", "N", "R"]  # A and C landed
    assert "continues the update that stopped part-way" in plan.explanation
    assert "A (a-bkt)" in plan.explanation  # the old one its cleanup deletes
    assert plan.document["continues"]["A"] == ["a-bkt", "a2-bkt"]
    result = await stacks.ops.deploy(ALICE, "app", v2(), "finish it", plan_token=token.token)

    assert result.status == "UPDATE_COMPLETE", result.reason
    assert names(stacks) == {"a2-bkt", "b-bkt", "c-bkt", "n-bkt"}
    plan_id = recorded(token.token)
    assert (await stacks.world.store.current()).stacks["app"].execution_token == plan_id
    cleaned = (await stacks.world.store.history("a-bkt"))[-1]
    assert cleaned.operation == "delete"
    assert cleaned.execution_token.startswith(f"{plan_id}#A/cleanup.")


async def test_a_destroy_is_not_previewed_while_an_update_is_stopped(stacks: Stacks) -> None:
    await stopped_at_b(stacks)
    with pytest.raises(StateConflict, match="UPDATE_FAILED"):
        await stacks.ops.preview(ALICE, "app", None, "", operation="destroy")
