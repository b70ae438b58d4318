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
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from ccstate.backends.config_layers import (  # noqa: F401  (re-exported: the public names)
    BLOCK,
    CONFIG_FILE_ENV,
    DEFAULT_CONFIG_FILE,
    ENV_VARS,
    HOME_DIR,
    IGNORED_SEED_KEYS,
    backend_url_of,
    merge_layers,
    parse_duration,
)
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
        remote = self.remote_state
        return backend_url_of(
            self.backend, remote.enabled, remote.s3_bucket, self.prefix, self.state_file
        )


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Merge the layers (``config_layers.merge_layers``) and validate them.

    ``overrides`` are command-line values; None means "flag not given". The config file is
    ``config_file``, else ``$CCSTATE_CONFIG``, else the default; a file named explicitly must
    exist, the default one may be absent.
    """
    layers = merge_layers(overrides, env=env, config_file=config_file)
    settings = _validate(layers.values, layers.sources)
    settings._config_file = layers.path if layers.text is not None else None
    settings._sources = layers.sources
    _check_remote_state(settings)
    return settings


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
