"""The state and lock commands, run in-process through ``ccstate.cli.main`` on a real local
backend. (tests/system/test_cli.py runs the installed console script in subprocesses.)"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest
from ccstate.backends.local_locks import LocalLockManager
from ccstate.service.ports import LockScope

from ccstate.cli import main
from tests.unit.cli.seed import BUCKET, BUCKET_V1, BUCKET_V2, HEAD, QUEUE, seed


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    return seed(tmp_path / "state")


def run(capsys: pytest.CaptureFixture[str], backend: Path, *args: str) -> tuple[int, str, str]:
    code = main([*args, "--backend", str(backend)])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], backend: Path, *args: str) -> tuple[int, dict]:
    code, out, _ = run(capsys, backend, *args, "--output", "json")
    return code, json.loads(out)


# ---------------------------------------------------------------------- reading


def test_list_shows_current_resources_sorted(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "state", "list")
    assert code == 0
    assert data["serial"] == HEAD
    assert [r["identifier"] for r in data["resources"]] == [BUCKET]
    assert set(data["resources"][0]) == {
        "identifier",
        "resource_type",
        "region",
        "account_id",
        "created_at",
        "last_modified",
        "drift",
    }


def test_list_table_is_readable(capsys, backend: Path) -> None:
    code, out, _ = run(capsys, backend, "state", "list")
    assert code == 0
    assert BUCKET in out and "AWS::S3::Bucket" in out and "serial 4" in out


def test_show_now_and_at_an_earlier_serial(capsys, backend: Path) -> None:
    _, now = run_json(capsys, backend, "state", "show", BUCKET)
    _, then = run_json(capsys, backend, "state", "show", BUCKET, "--at", "1")
    assert now["resource"]["current_properties"] == BUCKET_V2
    assert then["resource"]["current_properties"] == BUCKET_V1
    assert then["serial"] == 1
    assert "lineage" not in now["resource"]


def test_show_identifier_with_slashes_at_a_serial_where_it_existed(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "state", "show", QUEUE, "--at", "2")
    assert code == 0
    assert data["resource"]["identifier"] == QUEUE


def test_show_deleted_resource_says_it_was_deleted(capsys, backend: Path) -> None:
    code, out, err = run(capsys, backend, "state", "show", QUEUE)
    assert code == 3
    assert "deleted" in err and "state history" in err
    assert out == ""


def test_show_refuses_path_like_identifier(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "state", "show", "../x")
    assert code == 2
    assert data["error"] == "invalid_input"
    assert "'..'" in data["message"]


def test_history_lists_every_change_oldest_first(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "state", "history", QUEUE)
    assert code == 0
    assert [(e["serial"], e["operation"], e["user"]) for e in data["entries"]] == [
        (2, "create", "bob"),
        (4, "delete", "alice"),
    ]
    assert data["entries"][1]["user_intent"] == "not needed"


def test_history_of_unknown_resource_is_not_found(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "state", "history", "nope")
    assert code == 3
    assert data["error"] == "not_found"


def test_versions_newest_first_with_limit_and_all(capsys, backend: Path) -> None:
    _, default = run_json(capsys, backend, "state", "versions")
    _, limited = run_json(capsys, backend, "state", "versions", "--limit", "2")
    _, everything = run_json(capsys, backend, "state", "versions", "--all")
    assert [v["serial"] for v in default["versions"]] == [4, 3, 2, 1]
    assert [v["serial"] for v in limited["versions"]] == [4, 3]
    assert len(everything["versions"]) == HEAD
    first = default["versions"][0]
    assert (first["who"], first["why"]) == ("alice", "not needed")
    assert first["summary"] == f"delete {QUEUE}"


def test_versions_rejects_a_zero_limit(capsys, backend: Path) -> None:
    code, _, err = run(capsys, backend, "state", "versions", "--limit", "0")
    assert code == 2
    assert "at least 1" in err


def test_diff_reports_resources_and_properties(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "state", "diff", "1", "4")
    assert code == 0
    assert data["summary"] == {"added": 0, "changed": 1, "removed": 0}
    (bucket,) = data["resources"]
    assert bucket["identifier"] == BUCKET
    assert bucket["properties"] == [
        {
            "path": "/VersioningConfiguration",
            "change": "added",
            "before": None,
            "after": {"Status": "Enabled"},
        }
    ]


def test_diff_of_a_serial_beyond_head_is_not_found(capsys, backend: Path) -> None:
    code, _, err = run(capsys, backend, "state", "diff", "1", "99")
    assert code == 3
    assert "No version 99" in err


# ---------------------------------------------------------------------- restore


def test_restore_is_a_new_commit_and_releases_the_lock(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "state", "restore", "2", "--reason", "undo")
    assert code == 0
    assert data["serial"] == HEAD + 1
    assert {c["identifier"] for c in data["changes"]} == {BUCKET, QUEUE}
    _, listed = run_json(capsys, backend, "state", "list")
    assert sorted(r["identifier"] for r in listed["resources"]) == sorted([BUCKET, QUEUE])
    _, versions = run_json(capsys, backend, "state", "versions", "--limit", "1")
    assert versions["versions"][0]["summary"] == "restore to serial 2"
    assert versions["versions"][0]["why"] == "undo"
    _, locks = run_json(capsys, backend, "lock", "list")
    assert locks["locks"] == []


def test_restore_of_missing_serial_changes_nothing_and_leaves_no_lock(capsys, backend) -> None:
    code, _, _err = run(capsys, backend, "state", "restore", "42")
    assert code == 3
    _, versions = run_json(capsys, backend, "state", "versions")
    assert versions["head"] == HEAD
    _, locks = run_json(capsys, backend, "lock", "list")
    assert locks["locks"] == []


def test_restore_waits_for_the_workspace_lock_then_times_out(capsys, backend: Path) -> None:
    held = hold_workspace_lock(backend)
    code, data = run_json(capsys, backend, "state", "restore", "1", "--lock-timeout", "0.2")
    assert code == 6
    assert data["error"] == "lock_timeout"
    _, versions = run_json(capsys, backend, "state", "versions")
    assert versions["head"] == HEAD
    _, locks = run_json(capsys, backend, "lock", "list")
    assert [lock["id"] for lock in locks["locks"]] == [held]


# ---------------------------------------------------------------------- pull and push


def test_pull_to_file_is_private_and_complete(capsys, backend: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "state.json"
    target.parent.mkdir()
    code, data = run_json(capsys, backend, "state", "pull", str(target))
    assert code == 0
    assert data["serial"] == HEAD and data["resources"] == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    doc = json.loads(target.read_text())
    assert doc["metadata"]["serial"] == HEAD
    assert [e["operation"] for e in doc["resources"][BUCKET]["lineage"]] == ["create", "update"]


def test_pull_without_file_prints_the_document(capsys, backend: Path) -> None:
    code, out, _ = run(capsys, backend, "state", "pull")
    assert code == 0
    assert json.loads(out)["version"] == "1.0"


def test_push_of_own_pull_then_stale_push_is_refused(capsys, backend, tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    run(capsys, backend, "state", "pull", str(doc))
    code, data = run_json(capsys, backend, "state", "push", str(doc))
    assert code == 0 and data["serial"] == HEAD + 1 and data["forced"] is False
    code, refused = run_json(capsys, backend, "state", "push", str(doc))
    assert code == 4
    assert refused["error"] == "import_refused"
    code, forced = run_json(capsys, backend, "state", "push", str(doc), "--force")
    assert code == 0 and forced["forced"] is True


def test_push_of_hand_edited_document_names_the_field(capsys, backend, tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    run(capsys, backend, "state", "pull", str(doc))
    data = json.loads(doc.read_text())
    del data["resources"][BUCKET]["resource_type"]
    doc.write_text(json.dumps(data))
    code, _out, err = run(capsys, backend, "state", "push", str(doc))
    assert code == 2
    assert f"resources.{BUCKET}.resource_type" in err
    _, versions = run_json(capsys, backend, "state", "versions")
    assert versions["head"] == HEAD


def test_push_of_broken_json_names_the_line(capsys, backend, tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text('{\n  "version": "1.0",\n  "metadata": {\n')
    code, data = run_json(capsys, backend, "state", "push", str(doc))
    assert code == 2
    assert "line 4" in data["message"]


# ---------------------------------------------------------------------- locks


def hold_workspace_lock(backend: Path) -> str:
    locks = LocalLockManager(backend)
    info = asyncio.run(
        locks.acquire(
            LockScope("default"), operation="test", who="tester", lease_seconds=300, timeout=1
        )
    )
    return info.id


def test_lock_list_and_force_unlock(capsys, backend: Path) -> None:
    lock_id = hold_workspace_lock(backend)
    _, listed = run_json(capsys, backend, "lock", "list")
    (lock,) = listed["locks"]
    assert (lock["id"], lock["who"], lock["scope"], lock["expired"]) == (
        lock_id,
        "tester",
        "workspace",
        False,
    )
    code, unlocked = run_json(capsys, backend, "lock", "force-unlock", lock_id)
    assert code == 0 and unlocked["unlocked"]["id"] == lock_id
    _, after = run_json(capsys, backend, "lock", "list")
    assert after["locks"] == []


def test_force_unlock_of_unknown_id(capsys, backend: Path) -> None:
    code, data = run_json(capsys, backend, "lock", "force-unlock", "0123456789abcdef")
    assert code == 6
    assert data["error"] == "lock_not_found"


# ---------------------------------------------------------------------- options and errors


def test_bad_workspace_is_refused_before_anything_is_written(capsys, backend: Path) -> None:
    code, _, err = run(capsys, backend, "state", "list", "--workspace", "../x")
    assert code == 2
    assert "workspace" in err.lower()
    assert not (backend.parent / "x").exists()


def test_environment_chooses_backend_workspace_and_output(capsys, monkeypatch, tmp_path) -> None:
    root = seed(tmp_path / "env-state", workspace="team")
    monkeypatch.setenv("CCSTATE_BACKEND", str(root))
    monkeypatch.setenv("CCSTATE_WORKSPACE", "team")
    monkeypatch.setenv("CCSTATE_OUTPUT", "json")
    assert main(["state", "list"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["workspace"], data["serial"]) == ("team", HEAD)


def test_flags_override_the_environment(capsys, monkeypatch, backend: Path) -> None:
    monkeypatch.setenv("CCSTATE_WORKSPACE", "other")
    code, data = run_json(capsys, backend, "state", "list", "--workspace", "default")
    assert code == 0 and data["serial"] == HEAD


def test_truncated_log_file_is_reported_not_crashed(capsys, backend: Path) -> None:
    log_file = backend / "default" / "log" / "00000000000000000003.json"
    log_file.write_bytes(log_file.read_bytes()[:40])
    code, _out, err = run(capsys, backend, "state", "history", BUCKET)
    assert code == 5
    assert "00000000000000000003.json" in err and "Next:" in err


def test_group_without_subcommand_prints_help(capsys) -> None:
    assert main(["state"]) == 2
    assert "pull" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys) -> None:
    assert main(["frobnicate"]) == 2


def test_diff_shows_an_added_tag_and_ignores_reordered_rules_the_schema_calls_a_set(
    capsys, tmp_path: Path
) -> None:
    from ccstate.backends.local_objects import LocalObjectStore
    from ccstate.service.state.store import StateStore

    from tests.unit.cli.seed import _change, _meta

    rules = [
        {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "CidrIp": "0.0.0.0/0"} for p in (80, 443)
    ]
    v1 = {
        "GroupDescription": "web",
        "SecurityGroupIngress": rules,
        "Tags": [{"Key": "MANAGED_BY", "Value": "ccstate"}],
    }
    v2 = {
        "GroupDescription": "web",
        "SecurityGroupIngress": rules[::-1],
        "Tags": [{"Key": "Environment", "Value": "prod"}, *v1["Tags"]],
    }

    async def record() -> None:
        store = StateStore(LocalObjectStore(tmp_path), "default")
        sg = "AWS::EC2::SecurityGroup"
        await store.commit([_change("sg-1", sg, "create", None, v1)], _meta("alice", "web"))
        await store.commit([_change("sg-1", sg, "update", v1, v2)], _meta("alice", "tag it"))

    asyncio.run(record())
    code, data = run_json(capsys, tmp_path, "state", "diff", "1", "2")
    assert code == 0
    assert data["resources"][0]["properties"] == [
        {
            "path": "/Tags/0",
            "change": "added",
            "before": None,
            "after": {"Key": "Environment", "Value": "prod"},
        }
    ]
    code, out, _ = run(capsys, tmp_path, "state", "diff", "1", "2")
    assert "+ /Tags/0 = {" in out and "Environment" in out
    assert "/Tags/0/Key" not in out and "SecurityGroupIngress" not in out
