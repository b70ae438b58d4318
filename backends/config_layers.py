"""The layers of ccstate's settings without pydantic: the config file, the environment, the
command line, merged into one dict (``merge_layers``), and the light check that lets a read-only
command such as ``state list`` start without importing pydantic (``light_settings``).

``backends.config`` validates the merged dict with pydantic (``Settings``); that is the one
validation. The light check accepts only values whose check is a type or a bound (strings,
booleans, durations, the snapshot interval) and returns None for anything else, so the caller
falls back to ``load_settings``, which reports what is wrong. It never accepts a value that
``Settings`` refuses (tests/unit/backends/test_config_layers.py generates settings to check it).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccstate.service.errors import ConfigError, InvalidInput
from ccstate.service.names import validate_workspace

HOME_DIR = "~/.aws/ccapi-mcp-server"
DEFAULT_CONFIG_FILE = f"{HOME_DIR}/config.json"
CONFIG_FILE_ENV = "CCSTATE_CONFIG"
BLOCK = "state_management"
# Keys of the seed's block that ccstate accepts in a config file and does not use.
IGNORED_SEED_KEYS = frozenset({"backup_retention_days"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string such as '90', '30s', '15m', '1h', '2d', '250ms'."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s', '15m' or '1h', not a boolean")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if not match:
            raise ValueError("expected a duration such as 30, '30s', '15m' or '1h'")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


# Environment variable -> setting. Empty values count as unset.
ENV_VARS = {
    "CCSTATE_BACKEND": "backend",
    "CCSTATE_WORKSPACE": "workspace",
    "CCSTATE_SNAPSHOT_EVERY": "snapshot_every",
    "CCSTATE_LOCK_TIMEOUT": "lock_timeout",
    "CCSTATE_LOCK_LEASE": "lock_lease",
    "CCSTATE_TOKEN_TTL": "token_ttl",
    "CCSTATE_KMS_KEY": "kms_key",
    "CCSTATE_DYNAMODB_TABLE": "dynamodb_table",
    "CCSTATE_REGION": "region",
    "CCSTATE_PREFIX": "prefix",
    "CCSTATE_DRIFT_RULES": "drift_rules",
    "CCSTATE_ACCEPT_CRITICAL_FINDINGS": "accept_critical_findings",
}


def read_config_file(path: Path, *, required: bool) -> tuple[dict[str, Any], str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"Config file {path} does not exist.",
                next_step=f"Create it, or unset {CONFIG_FILE_ENV} to use {DEFAULT_CONFIG_FILE}.",
            ) from None
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Cannot read config file {path}: {exc}.",
            next_step="Check the file's permissions and that it is UTF-8 JSON.",
        ) from exc
    try:
        document = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"Config file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
            next_step=f"Fix the JSON syntax at line {exc.lineno} of {path}.",
            file=str(path),
            line=exc.lineno,
        ) from None
    return _settings_block(document, path), text


def _settings_block(document: Any, path: Path) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ConfigError(
            f"Config file {path} must hold a JSON object, not {type(document).__name__}.",
            next_step=f'Write {{"{BLOCK}": {{...}}}} at the top level of {path}.',
        )
    block = document.get(BLOCK, {})
    if not isinstance(block, dict):
        raise ConfigError(
            f"Field '{BLOCK}' in config file {path} must be a JSON object.",
            next_step=f'Write "{BLOCK}": {{"enabled": true, ...}} in {path}.',
        )
    return {key: value for key, value in block.items() if key not in IGNORED_SEED_KEYS}


def line_hint(text: str | None, name: str) -> str:
    if text is None:
        return ""
    position = text.find(f'"{name}"')
    return "" if position < 0 else f", line {text.count(chr(10), 0, position) + 1}"


@dataclass(frozen=True)
class Layers:
    """The settings as given, before validation: values, where each came from, the file."""

    values: dict[str, Any]
    sources: dict[str, str]
    path: Path
    text: str | None  # the config file's text (None: no file)


def merge_layers(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Layers:
    """Command line > environment > config file. ``overrides`` are command-line values; None
    means "flag not given". The config file is ``config_file``, else ``$CCSTATE_CONFIG``, else
    the default; a file named explicitly must exist, the default one may be absent."""
    env = os.environ if env is None else env
    explicit = config_file or env.get(CONFIG_FILE_ENV) or None
    path = Path(explicit or DEFAULT_CONFIG_FILE).expanduser().absolute()
    file_values, text = read_config_file(path, required=bool(explicit))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, value in file_values.items():
        merged[name] = value
        sources[name] = f"config file {path} (field {BLOCK}.{name}{line_hint(text, name)})"
    for var, name in ENV_VARS.items():
        if env.get(var):
            merged[name] = env[var]
            sources[name] = f"environment variable {var}"
    for name, value in (overrides or {}).items():
        if value is not None:
            merged[name] = value
            sources[name] = f"command-line option --{name.replace('_', '-')}"
    return Layers(merged, sources, path, text)


def backend_url_of(
    backend: str | None,
    remote_enabled: bool,
    s3_bucket: str | None,
    prefix: str | None,
    state_file: str,
) -> str:
    """``backend`` if set; else the seed's remote_state as s3://; else state_file's folder."""
    if backend:
        return backend
    if remote_enabled and s3_bucket:
        return f"s3://{s3_bucket}/{(prefix or '').strip('/')}"
    return Path(state_file).expanduser().absolute().parent.as_uri()


# ---------------------------------------------------------------------- the light check


@dataclass(frozen=True)
class LightSettings:
    """What a read-only listing needs of the settings, checked without pydantic."""

    backend_url: str
    workspace: str
    state_file_path: Path
    kms_key: str | None


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _duration(low: float, *, inclusive: bool) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        try:
            seconds = parse_duration(value)
        except ValueError:
            return False
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            return False
        if isinstance(seconds, float) and not math.isfinite(seconds):
            return False
        return seconds >= low if inclusive else seconds > low

    return check


def _remote_state(value: Any) -> bool:
    checks = {"enabled": _is_bool, "s3_bucket": _text_or_none, "encryption": _is_bool}
    return isinstance(value, dict) and all(
        key in checks and checks[key](item) for key, item in value.items()
    )


def _is_bool(value: Any) -> bool:
    return type(value) is bool


# Every setting of ``config.Settings`` (a test compares the names) and the check under which
# the light path takes its value as given; a value that fails it goes to pydantic.
LIGHT_CHECKS: dict[str, Callable[[Any], bool]] = {
    "enabled": _is_bool,
    "state_file": lambda v: isinstance(v, str),
    "drift_check_interval": _duration(0, inclusive=False),
    "auto_remediation": _is_bool,
    "remote_state": _remote_state,
    "backend": _text_or_none,
    "workspace": lambda v: isinstance(v, str),
    "snapshot_every": lambda v: type(v) is int and v >= 1,
    "lock_timeout": _duration(0, inclusive=True),
    "lock_lease": _duration(0, inclusive=False),
    "token_ttl": _duration(0, inclusive=False),
    "kms_key": _text_or_none,
    "dynamodb_table": _text_or_none,
    "region": _text_or_none,
    "prefix": _text_or_none,
    "drift_rules": _text_or_none,
    "accept_critical_findings": _is_bool,
}


def light_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> LightSettings | None:
    """The settings a listing needs, or None when any given value needs pydantic to judge it
    (then ``load_settings`` validates them all and names what is wrong). Errors reading the
    config file are raised as ``load_settings`` raises them."""
    layers = merge_layers(overrides, env=env, config_file=config_file)
    values = layers.values
    if not all(name in LIGHT_CHECKS and LIGHT_CHECKS[name](v) for name, v in values.items()):
        return None
    try:
        workspace = validate_workspace(values.get("workspace", "default"))
    except InvalidInput:
        return None
    remote = values.get("remote_state") or {}
    if remote.get("enabled") and not remote.get("s3_bucket") and not values.get("backend"):
        return None  # load_settings says what is missing
    state_file = values.get("state_file", f"{HOME_DIR}/state.json")
    return LightSettings(
        backend_url=backend_url_of(
            values.get("backend"),
            bool(remote.get("enabled")),
            remote.get("s3_bucket"),
            values.get("prefix"),
            state_file,
        ),
        workspace=workspace,
        state_file_path=Path(state_file).expanduser().absolute(),
        kms_key=values.get("kms_key"),
    )
