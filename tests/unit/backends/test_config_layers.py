"""The light settings check (backends/config_layers.py) that lets `state list` start without
pydantic: it never accepts what ``load_settings`` refuses, and where it accepts, it resolves the
same backend, workspace, state file and KMS key."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from ccstate.backends.config import Settings, load_settings
from ccstate.backends.config_layers import LIGHT_CHECKS, light_settings
from ccstate.service.errors import ConfigError
from hypothesis import given, settings
from hypothesis import strategies as st

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        ["", "30s", "15m", "0", "-1", "1h", "x", "default", "team-a", "bad name", "../up"]
    ),
    st.sampled_from(["/tmp/ccstate-a", "file:///tmp/ccstate-b", "s3://bucket-one/p", "alias/k"]),
    st.lists(st.integers(), max_size=2),
    st.fixed_dictionaries(
        {},
        optional={
            "enabled": st.one_of(st.booleans(), st.just("yes")),
            "s3_bucket": st.one_of(st.none(), st.just("bucket-two"), st.just(3)),
            "encryption": st.booleans(),
        },
    ),
)
names = st.sampled_from([*LIGHT_CHECKS, "backup_retention_days", "unknown_key"])
DURATIONS = {"drift_check_interval", "lock_timeout", "lock_lease", "token_ttl"}
BOOLEANS = {"enabled", "auto_remediation", "accept_critical_findings"}


def plausible(name: str) -> st.SearchStrategy[Any]:
    """A value of the setting's own kind, so that most blocks pass both checks."""
    if name in DURATIONS:
        return st.sampled_from(["30s", 5, 0.5, "1h", 0, "250ms"])
    if name in BOOLEANS:
        return st.booleans()
    if name == "snapshot_every":
        return st.integers(0, 100)
    if name == "workspace":
        return st.sampled_from(["default", "team-a"])
    if name == "remote_state":
        return st.just({"enabled": True, "s3_bucket": "bucket-two"})
    return st.sampled_from(["/tmp/ccstate-c", "s3://bucket-three/q", "eu-west-1", None])


@st.composite
def blocks(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(names, max_size=4, unique=True))
    # Mostly values of the setting's kind, one in five anything at all.
    return {key: draw(values if draw(st.integers(0, 4)) == 0 else plausible(key)) for key in keys}


def test_every_setting_has_a_light_check() -> None:
    assert set(LIGHT_CHECKS) == set(Settings.model_fields)


@settings(max_examples=300, deadline=None)
@given(block=blocks())
def test_light_accepts_only_what_pydantic_accepts_and_agrees(block: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"state_management": block}))
        light = light_settings(env={}, config_file=config)
        if light is None:
            return
        full = load_settings(env={}, config_file=config)  # must not raise
    assert light.backend_url == full.backend_url
    assert light.workspace == full.workspace
    assert light.state_file_path == full.state_file_path
    assert light.kms_key == full.kms_key


def test_flags_and_environment_take_precedence_alike(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"state_management": {"workspace": "a", "backend": "/x"}}))
    env = {"CCSTATE_WORKSPACE": "b", "CCSTATE_BACKEND": "/y"}
    overrides = {"backend": "/z", "workspace": None}

    light = light_settings(overrides, env=env, config_file=config)
    full = load_settings(overrides, env=env, config_file=config)

    assert light is not None
    assert (light.backend_url, light.workspace) == (full.backend_url, full.workspace) == ("/z", "b")


def test_a_value_that_needs_pydantic_falls_back_and_the_error_is_still_reported(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"state_management": {"lock_timeout": "soon"}}))

    assert light_settings(env={}, config_file=config) is None
    with pytest.raises(ConfigError, match="lock_timeout"):
        load_settings(env={}, config_file=config)


def test_an_unreadable_config_file_is_reported_by_the_light_check_too(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{not json")

    with pytest.raises(ConfigError, match="not valid JSON"):
        light_settings(env={}, config_file=config)
