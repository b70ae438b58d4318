"""Backend URLs: parsing, errors that show the accepted forms, local opening, redaction."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from ccstate.backends.config import load_settings
from ccstate.backends.factory import open_backend, parse_backend_url, redact_url
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.errors import ConfigError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///srv/ccstate", "/srv/ccstate"),
        ("file://localhost/srv/ccstate", "/srv/ccstate"),
        ("file:///srv/with%20space", "/srv/with space"),
        ("/srv/ccstate", "/srv/ccstate"),
    ],
)
def test_local_urls(url: str, expected: str) -> None:
    spec = parse_backend_url(url)
    assert (spec.scheme, spec.path, spec.bucket) == ("file", expected, None)
    assert spec.url == Path(expected).as_uri()


def test_home_and_relative_paths(
    _isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_backend_url("file://~/state").path == str(_isolated_home / "state")
    assert parse_backend_url("~/state").path == str(_isolated_home / "state")
    monkeypatch.chdir(tmp_path)
    assert parse_backend_url("relative/dir").path == str(tmp_path / "relative" / "dir")


def test_s3_url_with_options() -> None:
    spec = parse_backend_url(
        "s3://team-state/platform/prod/?table=locks&kms_key=alias/ccstate&region=eu-west-1"
        "&encrypt=client"
    )
    assert (spec.scheme, spec.bucket, spec.prefix, spec.path) == (
        "s3",
        "team-state",
        "platform/prod",
        None,
    )
    assert spec.options == {
        "table": "locks",
        "kms_key": "alias/ccstate",
        "region": "eu-west-1",
        "encrypt": "client",
    }


def test_s3_options_fall_back_to_settings_and_the_url_wins() -> None:
    settings = load_settings(
        {"dynamodb_table": "from-settings", "region": "us-west-2", "prefix": "team"}, env={}
    )
    spec = parse_backend_url("s3://team-state?table=from-url", settings=settings)
    assert spec.options == {"table": "from-url", "region": "us-west-2"}
    assert spec.prefix == "team"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("ftp://host/dir", "scheme 'ftp' is not supported"),
        ("file://server/share", "host name"),
        ("file:///srv/x?mode=fast", "take no"),
        ("s3://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("s3://ab/x", "not a valid S3 bucket name"),
        ("s3://team-state/a//b", "prefix"),
        ("s3://team-state/a/../b", "prefix"),
        ("s3://team-state?tabel=x", "unknown option 'tabel'"),
        ("s3://team-state?table=a&table=b", "given twice"),
        ("s3://team-state?table=", "has no value"),
        ("s3://team-state?encrypt=rot13", "encrypt must be one of"),
        ("s3://AKIA:secret@team-state/x", "credentials"),
    ],
)
def test_malformed_urls_name_the_problem_and_the_accepted_forms(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        parse_backend_url(url)
    assert "s3://BUCKET/PREFIX?table=TABLE" in caught.value.next_step
    assert "secret" not in str(caught.value)


def test_redact_url_hides_passwords_and_secret_values() -> None:
    assert redact_url("s3://AKIA:hunter2@bucket/p") == "s3://AKIA:***@bucket/p"
    redacted = redact_url("s3://bucket/p?table=t&session_token=abc&kms_key=alias/k")
    assert "abc" not in redacted
    assert "table=t" in redacted and "kms_key=alias/k" in redacted
    assert redact_url("/plain/path") == "/plain/path"


async def test_open_local_backend_creates_a_private_root(tmp_path: Path) -> None:
    root = tmp_path / "team" / "state"
    backend = await open_backend(f"file://{root}", settings=load_settings(env={}))
    assert isinstance(backend.objects, LocalObjectStore)
    assert isinstance(backend.locks, LocalLockManager)
    assert backend.url == root.as_uri()
    assert not root.exists()  # opening (and reading) leaves no directory behind
    assert await backend.objects.get("default/log/x") is None and not root.exists()
    await backend.objects.put_if_absent("default/log/x", b"{}")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700  # the first write made it private
    assert stat.S_IMODE(root.parent.stat().st_mode) == 0o700
    assert backend.export_path == str(root / "state.json")
    await backend.close()


async def test_default_backend_keeps_the_seeds_state_json(_isolated_home: Path) -> None:
    backend = await open_backend(settings=load_settings(env={}))
    seed_dir = _isolated_home / ".aws" / "ccapi-mcp-server"
    assert backend.url == seed_dir.as_uri()
    assert backend.export_path == str(seed_dir / "state.json")


async def test_other_workspaces_export_in_their_own_folder(tmp_path: Path) -> None:
    settings = load_settings({"workspace": "prod"}, env={})
    backend = await open_backend(str(tmp_path), settings=settings)
    assert backend.export_path == str(tmp_path / "prod" / "state.json")
    assert backend.options["workspace"] == "prod"


async def test_open_backend_uses_the_environment(tmp_path: Path) -> None:
    settings = load_settings(env={"CCSTATE_BACKEND": f"file://{tmp_path}/env-root"})
    backend = await open_backend(settings=settings)
    assert backend.url == (tmp_path / "env-root").as_uri()


@pytest.mark.parametrize(
    "url",
    [
        "file://user:Hunter2pw@host/x",
        "file://user:Hunter2%40pw@host/x",
        "s3://user:Hunter2pw@bucket/x",
        "postgres://user:Hunter2pw@host/db",
        "s3://team-state/p?table=t&bogus=Hunter2pw",
        "s3://team-state/a/../b?password=Hunter2pw",
        "file:///tmp/x?token=Hunter2pw",
    ],
)
def test_a_password_in_a_backend_url_is_masked_in_every_message(url: str) -> None:
    """docs/backends.md: the URL's password and unknown or secret option values show as ***."""
    with pytest.raises(ConfigError) as caught:
        parse_backend_url(url)
    shown = json.dumps(caught.value.to_dict()) + str(caught.value)
    assert "Hunter2" not in shown
    assert "***" in shown
