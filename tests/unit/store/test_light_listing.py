"""The light listing (service/state/listing.py, what `state list` reads): over generated histories
its rows equal the validated view's; anything it cannot vouch for (an edited, resealed or
missing file) sends the CLI to the full read, which still reports it."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.memory import MemoryObjectStore
from ccstate.service.state import listing, model, snapshots
from ccstate.service.state.codec import SERIAL_WIDTH, encode_commit, serial_key
from ccstate.service.state.listing import light_listing
from ccstate.service.state.model import Commit, DriftStatus, ResourceChange
from ccstate.service.state.store import StateStore
from hypothesis import given, settings
from hypothesis import strategies as st

from ccstate.cli import main
from ccstate.commands.state import _resource_row

from .helpers import BUCKET, change, meta

IDS = ["a", "b", "c"]
LINEAGE = "0f0f0f0f-0000-4000-8000-000000000000"

change_strategy = st.fixed_dictionaries(
    {
        "identifier": st.sampled_from(IDS),
        "operation": st.sampled_from(
            ["create", "update", "delete", "forget", "drift_check", "restore", "rollback"]
        ),
        "outcome": st.sampled_from(["SUCCESS", "SUCCESS", "FAILED"]),
        "after": st.booleans(),
        "region": st.sampled_from([None, "us-east-1", "eu-west-1"]),
        "account_id": st.sampled_from([None, "123456789012"]),
        "drift": st.sampled_from([None, "IN_SYNC", "MODIFIED"]),
        "type": st.sampled_from([BUCKET, "AWS::SQS::Queue"]),
    }
)
commit_strategy = st.fixed_dictionaries(
    {
        "changes": st.lists(change_strategy, max_size=3),
        "fence": st.sampled_from([None, None, 1, 2, 3, 5]),
        "kind": st.sampled_from(["change", "change", "drift", "restore"]),
    }
)


def to_commit(serial: int, spec: dict[str, Any]) -> Commit:
    changes = [
        ResourceChange(
            identifier=c["identifier"],
            resource_type=c["type"],
            operation=c["operation"],
            outcome=c["outcome"],
            region=c["region"],
            account_id=c["account_id"],
            properties_after={"V": serial} if c["after"] else None,
            drift_status=DriftStatus(status=c["drift"]) if c["drift"] else None,
        )
        for c in spec["changes"]
    ]
    return Commit(
        serial=serial,
        parent=serial - 1,
        lineage=LINEAGE,
        committed_at=f"2026-11-30T12:00:{serial:02d}.000000Z",
        kind=spec["kind"],
        changes=changes,
        fence=spec["fence"],
    )


async def written(commits: list[dict[str, Any]], snapshot_at: int | None) -> MemoryObjectStore:
    """The commits put straight into the log (so that a fenced-out one can be there, as after a
    race), and a snapshot at ``snapshot_at`` written by the store itself."""
    objects = MemoryObjectStore()
    for serial, spec in enumerate(commits, start=1):
        body = encode_commit(to_commit(serial, spec))
        assert await objects.put_if_absent(serial_key("default/log/", serial), body)
    if snapshot_at:
        store = StateStore(objects, snapshot_every=10**9)
        await store._write_snapshot(await store.view_at(snapshot_at))
    return objects


async def both(objects: Any) -> tuple[Any, Any]:
    full = await StateStore(objects).current()
    return full, await light_listing(objects, "default")


def validated_rows(view: Any) -> dict[str, dict[str, Any]]:
    return {key: _resource_row(res) for key, res in view.resources.items()}


@settings(max_examples=80, deadline=None)
@given(commits=st.lists(commit_strategy, max_size=12), data=st.data())
def test_light_rows_equal_the_validated_view(commits: list[dict[str, Any]], data: Any) -> None:
    snapshot_at = data.draw(st.integers(0, len(commits)))

    full, light = asyncio.run(both(asyncio.run(written(commits, snapshot_at))))

    assert light is not None  # a history the store writes is always listed lightly
    assert (light.serial, light.lineage) == (full.serial, full.lineage)
    assert light.rows == validated_rows(full)


def test_formats_are_the_stores() -> None:
    assert listing.COMMIT_FORMAT == model.COMMIT_FORMAT
    assert listing.SNAPSHOT_FORMAT == model.SNAPSHOT_FORMAT
    assert listing.SNAPSHOT_FORMAT_V2 == model.SNAPSHOT_FORMAT_V2
    assert listing.POINTER_FORMAT == snapshots.POINTER_FORMAT
    assert listing.SERIAL_WIDTH == SERIAL_WIDTH
    assert listing.REMOVING_OPERATIONS == model.REMOVING_OPERATIONS
    assert set(listing.RESOURCE_SHAPE) <= set(model.ResourceState.model_fields)
    assert set(listing.CHANGE_SHAPE) <= set(model.ResourceChange.model_fields)
    assert set(listing.COMMIT_SHAPE) <= set(model.Commit.model_fields)


def test_an_import_of_a_whole_document_goes_to_the_full_read() -> None:
    async def run() -> Any:
        store = StateStore(MemoryObjectStore())
        await store.commit([change("a")], meta())
        await store.import_document(await store.export_document(), meta(kind="import"))
        return await both(store.objects)

    full, light = asyncio.run(run())
    assert light is None and "a" in full.resources


# ---------------------------------------------------------------------- through the CLI


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Seven commits, a snapshot at serial 5; the readable export is not involved."""
    root = tmp_path / "state"

    async def build() -> None:
        store = StateStore(LocalObjectStore(root), snapshot_every=5)
        for n in range(7):
            bucket = ResourceChange(
                identifier=f"bucket-{n}",
                resource_type=BUCKET,
                operation="create",
                region="eu-west-1",
                properties_after={"BucketName": f"bucket-{n}"},
            )
            await store.commit([bucket], meta())

    asyncio.run(build())
    return root


def cli_list(capsys: pytest.CaptureFixture[str], root: Path) -> tuple[int, Any, str]:
    code = main(["state", "list", "--backend", str(root), "--output", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else None, captured.err


def snapshot_file(root: Path) -> Path:
    return root / "default" / "snapshots" / f"{5:020d}.json"


def test_the_cli_lists_lightly_what_the_store_lists(capsys, state: Path) -> None:
    code, data, err = cli_list(capsys, state)
    full = asyncio.run(StateStore(LocalObjectStore(state)).current())

    assert code == 0 and err == ""
    assert asyncio.run(light_listing(LocalObjectStore(state), "default")) is not None
    assert data["serial"] == 7 and data["total"] == 7
    assert data["resources"] == [validated_rows(full)[k] for k in sorted(full.resources)]


def test_an_edited_snapshot_is_still_reported(capsys, caplog, state: Path) -> None:
    path = snapshot_file(state)
    path.write_bytes(path.read_bytes().replace(b"eu-west-1", b"eu-west-2", 1))

    assert asyncio.run(light_listing(LocalObjectStore(state), "default")) is None
    code, data, _ = cli_list(capsys, state)
    assert code == 0 and data["total"] == 7  # the store replays the log instead ...
    assert "does not match its sha256" in caplog.text  # ... and warns why
    assert {r["region"] for r in data["resources"]} == {"eu-west-1"}


def test_a_resealed_snapshot_of_another_shape_is_not_listed_lightly(
    capsys, caplog, state: Path
) -> None:
    path = snapshot_file(state)
    body = json.loads(path.read_bytes())
    body["resources"]["bucket-0"]["region"] = 5  # a type the store never writes
    path.write_bytes(snapshots.seal(body))

    assert asyncio.run(light_listing(LocalObjectStore(state), "default")) is None
    code, data, _ = cli_list(capsys, state)
    assert code == 0 and data["resources"][0]["region"] == "eu-west-1"
    assert "Skipping snapshot" in caplog.text


def test_an_edited_commit_after_the_snapshot_is_an_error(capsys, state: Path) -> None:
    path = state / "default" / "log" / f"{6:020d}.json"
    path.write_bytes(path.read_bytes().replace(b"bucket-5", b"bucket-X"))

    code, data, _ = cli_list(capsys, state)
    assert code != 0
    assert data["error"] == "integrity_error"


def test_a_missing_commit_is_an_error(capsys, state: Path) -> None:
    (state / "default" / "log" / f"{6:020d}.json").unlink()

    code, data, _ = cli_list(capsys, state)
    assert code != 0
    # Serial 6 was handed out by the local sequencer and its ticket is spent: written, gone.
    assert "Commit 6 of workspace 'default' was written and is now missing" in data["message"]


def test_a_deleted_head_commit_that_the_export_saw_is_an_error(capsys, tmp_path: Path) -> None:
    """The readable state.json witnesses the head: the light path declines, the store reports."""
    from ccstate.backends.config import load_settings
    from ccstate.backends.factory import build_store, open_backend

    root = tmp_path / "state"

    async def build() -> None:
        settings = load_settings({"backend": str(root)}, env={})
        backend = await open_backend(settings.backend_url, settings=settings)
        store = build_store(backend, settings)
        for n in range(3):
            await store.commit([change(f"bucket-{n}")], meta())
        await backend.close()

    asyncio.run(build())
    assert (root / "state.json").exists()
    (root / "default" / "log" / f"{3:020d}.json").unlink()

    code, data, _ = cli_list(capsys, root)
    assert code != 0
    # The local sequencer handed serial 3 out and its ticket is spent: it was written (caught
    # before the readable export, which would tell the same).
    assert "Commit 3 of workspace 'default' was written and is now missing" in data["message"]


def test_a_head_commit_rewritten_after_a_restore_is_an_error(capsys, tmp_path: Path) -> None:
    """The head file names the sha256 of this machine's last commit: the light path declines
    when the log holds another commit at that serial, and the store reports it."""
    from ccstate.backends.config import load_settings
    from ccstate.backends.factory import build_store, open_backend

    root = tmp_path / "state"
    log = root / "default" / "log"

    async def commit(n: int, *, exporting: bool) -> None:
        settings = load_settings({"backend": str(root)}, env={})
        backend = await open_backend(settings.backend_url, settings=settings)
        store = build_store(backend, settings) if exporting else StateStore(backend.objects)
        await store.commit([change(f"bucket-{n}")], meta())
        await store.close()
        await backend.close()

    asyncio.run(commit(1, exporting=True))
    backup = (log / f"{1:020d}.json").read_bytes()
    asyncio.run(commit(2, exporting=True))
    (log / f"{2:020d}.json").unlink()
    shutil.rmtree(root / "default" / "snapshots", ignore_errors=True)
    assert (log / f"{1:020d}.json").read_bytes() == backup
    asyncio.run(commit(3, exporting=False))  # another machine, on the restored log

    code, data, _ = cli_list(capsys, root)
    assert code != 0
    assert "is not the one this machine wrote" in data["message"]


@pytest.mark.parametrize("edit", ["drop parent", "region is a number"])
def test_a_sealed_commit_of_another_shape_is_left_to_the_store(edit: str) -> None:
    """A commit with a valid digest but a shape the store never writes (a writer's bug, or a
    hand-made file): the light path declines, the store's read refuses it."""
    quiet = {"changes": [], "fence": None, "kind": "change"}
    body = to_commit(2, quiet).model_dump(mode="json", exclude={"sha256"})
    body["changes"] = [{"identifier": "a", "resource_type": BUCKET, "operation": "create"}]
    if edit == "drop parent":
        del body["parent"]
    else:
        body["changes"][0]["region"] = 5
    body["sha256"] = model.sha256_hex(model.canonical_json(body))

    async def run() -> tuple[Any, Exception | None]:
        objects = await written([quiet], None)
        await objects.put_if_absent(serial_key("default/log/", 2), json.dumps(body).encode())
        light = await light_listing(objects, "default")
        try:
            await StateStore(objects).current()
        except Exception as exc:  # the store's verdict
            return light, exc
        return light, None

    light, refused = asyncio.run(run())
    assert light is None
    assert refused is not None and "malformed" in str(refused)
