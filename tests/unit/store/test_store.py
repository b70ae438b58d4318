"""The transaction-log store on the real local backend: commits, rebase, conflicts, snapshots,
versions, restore, import/export, and what bad files on disk do."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import (
    ImportRefused,
    IntegrityError,
    InvalidInput,
    NotFound,
    StateConflict,
    StateCorrupt,
    UnsupportedVersion,
)
from ccstate.service.state.model import ResourceChange, Stack, StackChange, StateDocument
from ccstate.service.state.store import StateStore

from .helpers import BUCKET, change, meta

REPO = Path(__file__).resolve().parents[3]
SEED = REPO / "docs" / "examples" / "seed-state.json"
SHARED_SEED = REPO.parent / "shared" / "examples" / "seed-state.json"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "state"


def store_at(root: Path, **kw) -> StateStore:
    return StateStore(LocalObjectStore(root), **kw)


async def test_commit_then_a_fresh_store_sees_it(root: Path) -> None:
    first = store_at(root)
    commit = await first.commit([change("b1", Versioning="on")], meta())
    assert commit.serial == 1 and commit.parent == 0 and commit.sha256

    second = store_at(root)
    res = await second.get_resource("b1")
    assert res is not None
    assert res.current_properties == {"BucketName": "b1", "Versioning": "on"}
    assert res.created_at == commit.committed_at
    assert await second.head() == 1


async def test_disjoint_concurrent_commits_rebase(root: Path) -> None:
    a, b = store_at(root), store_at(root)
    await a.commit([change("shared")], meta())
    base = await a.head()
    await b.commit([change("only-b")], meta("bob"), base_serial=await b.head())
    landed = await a.commit([change("only-a")], meta("alice"), base_serial=base)
    assert landed.serial == 3
    view = await store_at(root).current()
    assert set(view.resources) == {"shared", "only-a", "only-b"}


async def test_overlapping_commit_raises_conflict_naming_resource_and_author(root: Path) -> None:
    a, b = store_at(root), store_at(root)
    await a.commit([change("b1")], meta())
    base = await a.head()
    await b.commit([change("b1", "update", Tag="bob")], meta("bob"), base_serial=base)
    with pytest.raises(StateConflict) as err:
        await a.commit([change("b1", "update", Tag="alice")], meta("alice"), base_serial=base)
    assert err.value.resources == ["b1"]
    assert any("bob" in author for author in err.value.authors)
    assert "Nothing was written" in str(err.value)
    assert (await store_at(root).get_resource("b1")).current_properties["Tag"] == "bob"
    assert await store_at(root).head() == 2


async def test_history_of_a_deleted_resource_stays_readable(root: Path) -> None:
    st = store_at(root, snapshot_every=2)
    await st.commit([change("b1")], meta())
    await st.commit([change("b1", "update", V=1)], meta())
    await st.commit([change("other")], meta())
    await st.commit([change("b1", "delete")], meta())
    fresh = store_at(root, snapshot_every=2)
    assert await fresh.get_resource("b1") is None
    history = await fresh.history("b1")
    assert [e.operation for e in history] == ["create", "update", "delete"]
    assert [e.serial for e in history] == [1, 2, 4]
    with pytest.raises(NotFound):
        await fresh.history("never-existed")


async def test_failed_operation_is_recorded_without_changing_properties(root: Path) -> None:
    st = store_at(root)
    await st.commit([change("b1", V=1)], meta())
    failed = ResourceChange(
        identifier="b1",
        resource_type=BUCKET,
        operation="update",
        outcome="FAILED",
        properties_before={"BucketName": "b1", "V": 1},
        error={"code": "NotUpdatable", "message": "BucketName is create-only"},
    )
    await st.commit([failed], meta())
    res = await st.get_resource("b1")
    assert res.current_properties == {"BucketName": "b1", "V": 1}
    last = (await st.history("b1"))[-1]
    assert last.outcome == "FAILED" and last.error["code"] == "NotUpdatable"


async def test_snapshots_are_written_and_used(root: Path) -> None:
    st = store_at(root, snapshot_every=5)
    for i in range(12):
        await st.commit([change(f"b{i % 3}", V=i)], meta())
    snaps = sorted(p.name for p in (root / "default" / "snapshots").iterdir())
    assert snaps == ["00000000000000000005.json", "00000000000000000010.json"]
    # A fresh store reads snapshot 10 and replays 11..12 only.
    os.remove(root / "default" / "log" / "00000000000000000003.json")
    fresh = store_at(root, snapshot_every=5)
    assert (await fresh.current()).resources["b2"].current_properties["V"] == 11


async def test_versions_show_restore_and_diff_inputs(root: Path) -> None:
    st = store_at(root)
    await st.commit([change("b1", V=1)], meta(user_intent="first"))
    await st.commit([change("b1", "update", V=2)], meta())
    await st.commit([change("b2")], meta())
    versions = await st.versions()
    assert [v.serial for v in versions] == [3, 2, 1]
    assert versions[2].summary == "create b1" and versions[2].who == "alice"
    assert [v.serial for v in await st.versions(limit=2)] == [3, 2]

    restored = await st.restore(1, meta("carol"))
    assert restored.kind == "restore" and restored.restored_from == 1
    view = await store_at(root).current()
    assert set(view.resources) == {"b1"}
    assert view.resources["b1"].current_properties["V"] == 1
    ops = [e.operation for e in await st.history("b1")]
    assert ops == ["create", "update", "restore"]
    at2 = await st.materialize(2)
    assert at2.resources["b1"].current_properties["V"] == 2
    assert at2.metadata.serial == 2
    with pytest.raises(NotFound):
        await st.materialize(99)


async def test_stacks_are_recorded_and_restored(root: Path) -> None:
    st = store_at(root)
    stack = Stack(resources=["b1"], user_intent="web app", status="deployed")
    await st.commit([change("b1")], meta(), stacks=[StackChange(name="web", stack=stack)])
    await st.commit([], meta(), stacks=[StackChange(name="web", stack=None)])
    assert (await st.current()).stacks == {}
    await st.restore(1, meta())
    assert (await store_at(root).current()).stacks["web"].user_intent == "web app"


def _seed() -> dict:
    return json.loads(SEED.read_text())


def test_repo_copy_of_the_seed_example_is_current() -> None:
    if not SHARED_SEED.exists():
        pytest.skip("../shared is not beside this checkout")
    assert json.loads(SHARED_SEED.read_text()) == _seed()


def test_seed_document_round_trips() -> None:
    original = _seed()
    doc = StateDocument.model_validate(original)
    assert doc.to_json_dict() == original
    again = StateDocument.model_validate(json.loads(json.dumps(doc.to_json_dict())))
    assert again == doc


async def test_import_export_of_the_seed_keeps_resources_and_lineage(root: Path) -> None:
    st = store_at(root)
    seed = StateDocument.model_validate(_seed())
    await st.import_document(seed, meta())
    exported = (await store_at(root).export_document()).to_json_dict()
    original = _seed()
    mine = exported["resources"]["my-bucket"]
    theirs = original["resources"]["my-bucket"]
    assert mine["current_properties"] == theirs["current_properties"]
    imported = [{k: v for k, v in e.items() if v is not None} for e in mine["lineage"][:2]]
    assert imported == [{k: v for k, v in e.items() if v is not None} for e in theirs["lineage"]]
    assert mine["lineage"][2]["operation"] == "import"
    assert mine["dependencies"] == theirs["dependencies"]
    assert exported["stacks"] == original["stacks"]
    assert exported["metadata"]["serial"] == 1


async def test_import_is_guarded_by_lineage_and_serial(root: Path) -> None:
    st = store_at(root)
    await st.commit([change("b1")], meta())
    pulled = await st.export_document()
    await st.commit([change("b2")], meta())

    with pytest.raises(ImportRefused, match="older than"):
        await st.import_document(pulled, meta())
    foreign = StateDocument.model_validate(_seed())
    with pytest.raises(ImportRefused, match="lineage"):
        await st.import_document(foreign, meta())

    forced = await st.import_document(foreign, meta("admin"), force=True)
    assert forced.forced and forced.kind == "import"
    assert set((await st.current()).resources) == {"my-bucket"}
    versions = await st.versions(limit=1)
    assert "forced" in versions[0].summary and versions[0].who == "admin"
    # Pulling the latest, editing and pushing it back is accepted.
    latest = await st.export_document()
    latest.resources["my-bucket"].current_properties["Edited"] = True
    await st.import_document(latest, meta())
    assert (await st.get_resource("my-bucket")).current_properties["Edited"] is True


async def test_import_rejects_keys_that_do_not_match_identifiers(root: Path) -> None:
    doc = _seed()
    doc["resources"]["other-key"] = doc["resources"].pop("my-bucket")
    with pytest.raises(InvalidInput, match="does not match"):
        await store_at(root).import_document(StateDocument.model_validate(doc), meta())


@pytest.mark.parametrize("bad", ["", "a\x00b", "../etc/passwd", "x/../y", "tab\there", " pad"])
async def test_bad_identifiers_are_refused_before_anything_is_written(root: Path, bad: str) -> None:
    st = store_at(root)
    with pytest.raises(InvalidInput):
        await st.commit([change(bad)], meta())
    with pytest.raises(InvalidInput):
        await st.history(bad)
    assert await st.head() == 0


def test_identifiers_may_be_urls_and_log_group_paths(root: Path) -> None:
    from ccstate.service.names import validate_identifier

    for ok in ["https://sqs.us-east-1.amazonaws.com/1/q", "/aws/lambda/fn", "arn:aws:sns:x:1:t"]:
        assert validate_identifier(ok) == ok


@pytest.mark.parametrize("bad", ["..", "a/b", "a\x00", "", "../x", "-lead"])
def test_bad_workspaces_are_refused(root: Path, bad: str) -> None:
    with pytest.raises(InvalidInput, match="workspace"):
        store_at(root, workspace=bad)


def _log(root: Path, serial: int) -> Path:
    return root / "default" / "log" / f"{serial:020d}.json"


async def _three_commits(root: Path) -> None:
    st = store_at(root, snapshot_every=100)
    for i in range(3):
        await st.commit([change(f"b{i}")], meta())


async def test_truncated_commit_is_reported_with_its_name(root: Path) -> None:
    await _three_commits(root)
    path = _log(root, 2)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(StateCorrupt, match=r"00000000000000000002\.json") as err:
        await store_at(root).current()
    assert "not valid JSON" in str(err.value) and err.value.next_step


async def test_hand_edited_commit_fails_its_digest(root: Path) -> None:
    await _three_commits(root)
    path = _log(root, 2)
    path.write_text(path.read_text().replace('"b1"', '"evil"'))
    with pytest.raises(IntegrityError, match="sha256"):
        await store_at(root).current()


async def test_unknown_commit_format_asks_for_an_upgrade(root: Path) -> None:
    await _three_commits(root)
    path = _log(root, 3)
    data = json.loads(path.read_text())
    data["format"] = "ccstate.commit/99"
    path.write_text(json.dumps(data))
    with pytest.raises(UnsupportedVersion, match="Upgrade"):
        await store_at(root).current()


async def test_gap_in_the_log_is_detected(root: Path) -> None:
    await _three_commits(root)
    os.remove(_log(root, 2))
    with pytest.raises(StateCorrupt, match="gap"):
        await store_at(root).current()


async def test_corrupt_snapshot_is_skipped_and_the_log_replayed(root: Path) -> None:
    st = store_at(root, snapshot_every=2)
    for i in range(4):
        await st.commit([change(f"b{i}")], meta())
    (root / "default" / "snapshots" / f"{4:020d}.json").write_text("{not json")
    view = await store_at(root, snapshot_every=2).current()
    assert view.serial == 4 and len(view.resources) == 4


async def test_a_corrupt_store_is_never_written_to(root: Path) -> None:
    await _three_commits(root)
    path = _log(root, 3)
    path.write_bytes(b"")
    with pytest.raises(StateCorrupt):
        await store_at(root).commit([change("new")], meta())
    assert not _log(root, 4).exists()


async def test_files_are_private(root: Path) -> None:
    old = os.umask(0)
    try:
        st = store_at(root, snapshot_every=1)
        await st.commit([change("b1")], meta())
    finally:
        os.umask(old)
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), path


async def test_one_identifier_cannot_name_two_resource_types(root: Path) -> None:
    st = store_at(root)
    await st.commit([change("logs")], meta())
    queue = ResourceChange(
        identifier="logs",
        resource_type="AWS::SQS::Queue",
        operation="create",
        properties_after={"QueueName": "logs"},
    )
    with pytest.raises(InvalidInput, match="already records"):
        await st.commit([queue], meta())
    assert await st.head() == 1
    await st.commit([change("logs", "delete")], meta())
    await st.commit([queue], meta())
    assert (await st.get_resource("logs")).resource_type == "AWS::SQS::Queue"
