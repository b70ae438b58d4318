"""Settings: command line > environment > config.json > defaults, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ccstate.backends.config import load_settings, parse_duration
from ccstate.service.errors import ConfigError

SEED_BLOCK = {
    "enabled": True,
    "state_file": "~/.aws/ccapi-mcp-server/state.json",
    "backup_retention_days": 30,
    "drift_check_interval": "1h",
    "auto_remediation": False,
    "remote_state": {"enabled": False, "s3_bucket": "my-terraform-state", "encryption": True},
}


def write_config(home: Path, document: object) -> Path:
    path = home / ".aws" / "ccapi-mcp-server" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document, indent=2))
    return path


def test_defaults_point_at_the_seeds_directory(_isolated_home: Path) -> None:
    settings = load_settings(env={})
    assert settings.backend_url == (_isolated_home / ".aws" / "ccapi-mcp-server").as_uri()
    assert settings.workspace == "default"
    assert settings.config_file is None
    assert settings.source_of("workspace") == "default"


def test_the_seeds_config_block_loads_as_is(_isolated_home: Path) -> None:
    path = write_config(_isolated_home, {"other_feature": {"x": 1}, "state_management": SEED_BLOCK})
    settings = load_settings(env={})
    assert settings.config_file == path
    assert settings.drift_check_interval == 3600
    assert settings.remote_state.s3_bucket == "my-terraform-state"
    assert settings.backend_url.startswith("file://")
    # The seed's backup_retention_days is accepted; nothing in ccstate reads it.
    assert "backup_retention_days" not in settings.model_dump()


def test_precedence_is_flag_then_env_then_file_then_default(_isolated_home: Path) -> None:
    write_config(
        _isolated_home,
        {
            "state_management": {
                "workspace": "from-file",
                "lock_timeout": "2m",
                "region": "eu-west-1",
            }
        },
    )
    env = {"CCSTATE_WORKSPACE": "from-env", "CCSTATE_LOCK_TIMEOUT": "45"}
    settings = load_settings({"workspace": "from-flag", "lock_timeout": None}, env=env)
    assert settings.workspace == "from-flag"
    assert settings.lock_timeout == 45
    assert settings.region == "eu-west-1"
    assert settings.snapshot_every == 50
    assert settings.source_of("workspace") == "command-line option --workspace"
    assert settings.source_of("lock_timeout") == "environment variable CCSTATE_LOCK_TIMEOUT"
    assert "config file" in settings.source_of("region")


def test_remote_state_becomes_an_s3_url(_isolated_home: Path) -> None:
    block = {**SEED_BLOCK, "remote_state": {"enabled": True, "s3_bucket": "team-state"}}
    write_config(_isolated_home, {"state_management": {**block, "prefix": "/platform/"}})
    assert load_settings(env={}).backend_url == "s3://team-state/platform"
    explicit = load_settings(env={"CCSTATE_BACKEND": "/srv/state"})
    assert explicit.backend_url == "/srv/state"


def test_remote_state_without_bucket_is_a_config_error(_isolated_home: Path) -> None:
    write_config(_isolated_home, {"state_management": {"remote_state": {"enabled": True}}})
    with pytest.raises(ConfigError, match="s3_bucket"):
        load_settings(env={})


def test_malformed_json_names_the_file_and_line(_isolated_home: Path) -> None:
    path = write_config(_isolated_home, '{\n  "state_management": {\n    "enabled": true,,\n  }\n}')
    with pytest.raises(ConfigError) as caught:
        load_settings(env={})
    assert str(path) in str(caught.value)
    assert "line 3" in str(caught.value)
    assert caught.value.details["line"] == 3


def test_a_bad_value_names_the_field_file_and_line(_isolated_home: Path) -> None:
    path = write_config(
        _isolated_home, {"state_management": {"enabled": True, "snapshot_every": "often"}}
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(env={})
    message = str(caught.value)
    assert "snapshot_every" in message and str(path) in message and "line 4" in message


def test_an_unknown_setting_lists_the_accepted_ones(_isolated_home: Path) -> None:
    write_config(_isolated_home, {"state_management": {"lock_timout": 5}})
    with pytest.raises(ConfigError, match="lock_timout") as caught:
        load_settings(env={})
    assert "lock_timeout" in caught.value.next_step


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="CCSTATE_LOCK_TIMEOUT"):
        load_settings(env={"CCSTATE_LOCK_TIMEOUT": "soon"})


def test_an_invalid_workspace_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="workspace"):
        load_settings({"workspace": "../etc"}, env={})


def test_the_config_file_must_hold_an_object(_isolated_home: Path) -> None:
    write_config(_isolated_home, "[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        load_settings(env={})
    write_config(_isolated_home, {"state_management": "on"})
    with pytest.raises(ConfigError, match="state_management"):
        load_settings(env={})


def test_an_explicit_config_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(env={"CCSTATE_CONFIG": str(missing)})
    missing.write_text(json.dumps({"state_management": {"workspace": "elsewhere"}}))
    assert load_settings(env={"CCSTATE_CONFIG": str(missing)}).workspace == "elsewhere"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30),
        ("90", 90),
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("2d", 172800),
        ("250ms", 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "1 hour", "-5s", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_accepting_critical_findings_is_off_unless_the_operator_says_so(
    _isolated_home: Path,
) -> None:
    assert load_settings(env={}).accept_critical_findings is False
    write_config(_isolated_home, {"state_management": {"accept_critical_findings": True}})
    assert load_settings(env={}).accept_critical_findings is True
    env = {"CCSTATE_ACCEPT_CRITICAL_FINDINGS": "false"}
    assert load_settings(env=env).accept_critical_findings is False
