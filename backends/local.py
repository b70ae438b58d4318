"""The local backend: a private directory holding the object store and the lock files.

<root>/state.json                  readable export of the 'default' workspace (the seed's file)
<root>/<workspace>/state.json      readable export of any other workspace
<root>/<workspace>/log/...         the transaction log     (LocalObjectStore)
<root>/<workspace>/snapshots/...   materialized snapshots  (LocalObjectStore)
<root>/<workspace>/locks/...       lease files             (LocalLockManager)
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

from backends.base import Backend, BackendSpec
from backends.config import Settings
from backends.local_locks import LocalLockManager
from backends.local_objects import LocalObjectStore
from service.ports import Clock

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "default"


def open_local_backend(
    spec: BackendSpec, settings: Settings, *, clock: Clock | None = None
) -> Backend:
    if spec.path is None:
        raise ValueError(f"not a local backend spec: {spec.url}")
    root = Path(spec.path)
    objects = LocalObjectStore(root)  # creates the root 0700 when missing
    _warn_if_shared(root)
    return Backend(
        url=spec.url,
        objects=objects,
        locks=LocalLockManager(root, clock),
        export_path=str(local_export_path(root, settings)),
        options={"workspace": settings.workspace},
    )


def local_export_path(root: Path, settings: Settings) -> Path:
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


def _warn_if_shared(root: Path) -> None:
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "state directory %s is readable by other users (mode %o); run `chmod 700 %s`",
            root,
            mode,
            root,
        )
