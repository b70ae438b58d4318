"""What every CLI command handler receives: parsed arguments, settings, output, and the state."""

from __future__ import annotations

import argparse
import getpass
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ccstate.output import FORMATS, Output, OutputFormat
from ccstate.service.errors import ConfigError

if TYPE_CHECKING:  # imported when used: `--help` and `--output json` need none of them
    from ccstate.backends.base import Backend
    from ccstate.backends.config import Settings
    from ccstate.backends.config_layers import LightSettings
    from ccstate.service.authz.principal import Principal as RequestPrincipal
    from ccstate.service.state.model import Principal
    from ccstate.service.state.store import StateStore

OUTPUT_ENV = "CCSTATE_OUTPUT"
# Command-line options that override a setting of the same name (flags > env > config.json).
SETTING_FLAGS = ("backend", "workspace", "lock_timeout")


def output_format(flag: str | None, env: Mapping[str, str]) -> OutputFormat:
    """``--output``, else $CCSTATE_OUTPUT, else table."""
    value = flag or env.get(OUTPUT_ENV) or "table"
    if value not in FORMATS:
        raise ConfigError(
            f"Invalid output format {value!r} in environment variable {OUTPUT_ENV}.",
            next_step=f"Use one of: {', '.join(FORMATS)}.",
        )
    return value  # type: ignore[return-value]


class CliContext:
    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.args = args
        self.out = out

    @cached_property
    def settings(self) -> Settings:
        """Resolved on first use, so commands that need no backend never read config.json."""
        from ccstate.backends.config import load_settings  # pydantic: only when needed

        return load_settings(self._overrides())

    @cached_property
    def light_settings(self) -> LightSettings | None:
        """What a read-only listing needs, checked without pydantic; None when a value needs
        the full check (``settings`` then reports what is wrong)."""
        from ccstate.backends.config_layers import light_settings

        return light_settings(self._overrides())

    def _overrides(self) -> dict[str, Any]:
        return {name: getattr(self.args, name, None) for name in SETTING_FLAGS}

    @property
    def workspace(self) -> str:
        return self.settings.workspace

    def principal(self) -> Principal:
        """Who the CLI acts as, as commits record it: the local user on this host."""
        return self.request_principal().to_record()

    def request_principal(self) -> RequestPrincipal:
        """The principal of this command (the login of the process, on this host)."""
        from ccstate.service.authz.principal import Principal as RequestPrincipal

        return RequestPrincipal(_local_user(), "os-user", None, socket.gethostname())

    def who(self) -> str:
        return f"{_local_user()}@{socket.gethostname()} (ccstate CLI, pid {os.getpid()})"

    @asynccontextmanager
    async def open_backend(self) -> AsyncIterator[Backend]:
        from ccstate.backends.factory import open_backend  # imported late: it pulls in the AWS SDK

        backend = await open_backend(self.settings.backend_url, settings=self.settings)
        try:
            yield backend
        finally:
            await backend.close()

    @asynccontextmanager
    async def open_state(self) -> AsyncIterator[tuple[Backend, StateStore]]:
        from ccstate.app import open_state  # the one wiring of the parts

        async with open_state(self.settings) as (backend, store):
            yield backend, store


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return f"uid-{os.getuid()}"
