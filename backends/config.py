"""ccstate settings. Precedence: command line > environment > config.json > defaults.

The config file is ``~/.aws/ccapi-mcp-server/config.json`` (or ``$CCSTATE_CONFIG``).

config.json keeps the seed's shape; ccstate's own settings sit in the same block::

    {"state_management": {
        "enabled": true,
        "state_file": "~/.aws/ccapi-mcp-server/state.json",
        "drift_check_interval": "1h", "auto_remediation": false,
        "remote_state": {"enabled": false, "s3_bucket": "my-state", "encryption": true},
        "backend": "s3://my-state/team?table=ccstate-locks", "workspace": "default",
        "snapshot_every": 50, "lock_timeout": "30s", "lock_lease": "60s", "token_ttl": "15m",
        "kms_key": "alias/ccstate", "dynamodb_table": "ccstate-locks", "region": "eu-west-1",
        "prefix": "team", "accept_critical_findings": false}}

Other top-level keys belong to the rest of the MCP server and are left alone; an unknown key
inside ``state_management`` is an error (a typo would otherwise be silently ignored), except
the seed's ``backup_retention_days``, accepted and ignored: history is append-only, and how long
old object versions stay is the bucket's lifecycle rule (``backend bootstrap``).

The layering is ours, not pydantic-settings': see docs/decisions.md, "Libraries".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from ccstate.service.errors import ConfigError, InvalidInput
from ccstate.service.names import validate_workspace
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

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


Duration = Annotated[float, BeforeValidator(parse_duration)]


class RemoteState(BaseModel):
    """The seed's ``remote_state`` block: enabled with ``s3_bucket`` means an s3:// backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    s3_bucket: str | None = None
    encryption: bool = True


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The seed's settings.
    enabled: bool = True
    state_file: str = f"{HOME_DIR}/state.json"
    drift_check_interval: Duration = Field(3600.0, gt=0)
    auto_remediation: bool = False
    remote_state: RemoteState = RemoteState()
    # ccstate's additions.
    backend: str | None = None
    workspace: str = "default"
    snapshot_every: int = Field(50, ge=1)
    lock_timeout: Duration = Field(30.0, ge=0)
    lock_lease: Duration = Field(60.0, gt=0)
    token_ttl: Duration = Field(900.0, gt=0)
    kms_key: str | None = None
    dynamodb_table: str | None = None
    region: str | None = None
    prefix: str | None = None
    drift_rules: str | None = None  # path of a JSON file: extra severity rules, tried first
    # May a person accept a CRITICAL scan finding (approve_security_findings)? Operators only.
    accept_critical_findings: bool = False

    _config_file: Path | None = PrivateAttr(default=None)
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("workspace")
    @classmethod
    def _workspace_name(cls, value: str) -> str:
        try:
            return validate_workspace(value)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @property
    def config_file(self) -> Path | None:
        """The config.json these settings were read from, when one existed."""
        return self._config_file

    def source_of(self, name: str) -> str:
        """Where a setting came from: 'default', 'config file ...', 'environment variable ...'."""
        return self._sources.get(name, "default")

    @property
    def state_file_path(self) -> Path:
        return Path(self.state_file).expanduser().absolute()

    @property
    def backend_url(self) -> str:
        """``backend`` if set; else the seed's remote_state as s3://; else state_file's folder."""
        if self.backend:
            return self.backend
        if self.remote_state.enabled and self.remote_state.s3_bucket:
            return f"s3://{self.remote_state.s3_bucket}/{(self.prefix or '').strip('/')}"
        return self.state_file_path.parent.as_uri()


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


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Merge the layers. ``overrides`` are command-line values; None means "flag not given".

    The config file is ``config_file``, else ``$CCSTATE_CONFIG``, else the default; a file named
    explicitly must exist, the default one may be absent.
    """
    env = os.environ if env is None else env
    explicit = config_file or env.get(CONFIG_FILE_ENV) or None
    path = Path(explicit or DEFAULT_CONFIG_FILE).expanduser().absolute()
    file_values, text = _read_config_file(path, required=bool(explicit))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, value in file_values.items():
        merged[name] = value
        sources[name] = f"config file {path} (field {BLOCK}.{name}{_line_hint(text, name)})"
    for var, name in ENV_VARS.items():
        if env.get(var):
            merged[name] = env[var]
            sources[name] = f"environment variable {var}"
    for name, value in (overrides or {}).items():
        if value is not None:
            merged[name] = value
            sources[name] = f"command-line option --{name.replace('_', '-')}"

    settings = _validate(merged, sources)
    settings._config_file = path if text is not None else None
    settings._sources = sources
    _check_remote_state(settings)
    return settings


def _read_config_file(path: Path, *, required: bool) -> tuple[dict[str, Any], str | None]:
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


def _line_hint(text: str | None, name: str) -> str:
    if text is None:
        return ""
    position = text.find(f'"{name}"')
    return "" if position < 0 else f", line {text.count(chr(10), 0, position) + 1}"


def _validate(merged: dict[str, Any], sources: dict[str, str]) -> Settings:
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = [str(part) for part in error["loc"]]
        field = ".".join(location)
        source = sources.get(location[0], "defaults") if location else "defaults"
        if error["type"] == "extra_forbidden":
            accepted = ", ".join(sorted(Settings.model_fields))
            if location[0] == "remote_state":
                accepted = ", ".join(sorted(RemoteState.model_fields))
            raise ConfigError(
                f"Unknown setting '{field}' in {source}.",
                next_step=f"Remove it or correct its spelling; accepted settings: {accepted}.",
                field=field,
            ) from None
        raise ConfigError(
            f"Invalid setting '{field}' = {error.get('input')!r} in {source}: {error['msg']}.",
            next_step=f"Correct '{field}' in {source}.",
            field=field,
        ) from None


def _check_remote_state(settings: Settings) -> None:
    remote = settings.remote_state
    if remote.enabled and not remote.s3_bucket and not settings.backend:
        raise ConfigError(
            "remote_state is enabled but has no s3_bucket "
            f"(in {settings.source_of('remote_state')}).",
            next_step=f'Set "{BLOCK}": {{"remote_state": {{"s3_bucket": "<bucket>"}}}}, or set '
            '"backend" to an s3:// URL, or disable remote_state.',
        )


def load_drift_rules(settings: Settings) -> list[dict[str, Any]]:
    """The user's extra drift severity rules from the ``drift_rules`` file ([] when unset)."""
    if not settings.drift_rules:
        return []
    path = Path(settings.drift_rules).expanduser()
    next_step = (
        "Make it a JSON list of rules such as "
        '[{"path": "/LoggingConfiguration", "severity": "high"}], '
        "or unset drift_rules."
    )
    try:
        rules = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the drift rules file {path}: {exc.strerror or exc}.",
            next_step=next_step,
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"The drift rules file {path} is not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}).",
            next_step=next_step,
        ) from exc
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(
            f"The drift rules file {path} is not a list of objects.", next_step=next_step
        )
    return rules
