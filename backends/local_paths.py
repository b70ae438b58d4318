"""Where a local backend keeps what a listing reads, without the lock manager or the settings
model: the readable export's path, and the warning for a state directory others can read.
Imported by ``backends.local`` and by the light read path of ``state list``."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

log = logging.getLogger("ccstate.backends.local")

DEFAULT_WORKSPACE = "default"


def local_export_path(root: Path, settings: Any) -> Path:
    """Where the readable state.json of ``settings.workspace`` goes.

    The default workspace keeps the seed's location (``state_file``, normally
    ``~/.aws/ccapi-mcp-server/state.json``) when it lies in the backend root, else
    ``<root>/state.json``; other workspaces use ``<root>/<workspace>/state.json``.
    """
    if settings.workspace != DEFAULT_WORKSPACE:
        return root / settings.workspace / "state.json"
    if settings.state_file_path.parent == root:
        return settings.state_file_path
    return root / "state.json"


def warn_if_shared(root: Path) -> None:
    if not root.is_dir():
        return
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "state directory %s is readable by other users (mode %o); run `chmod 700 %s`",
            root,
            mode,
            root,
        )
