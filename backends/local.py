"""The local backend: a private directory holding the object store and the lock files.

<root>/state.json                  readable export of the 'default' workspace (the seed's file)
<root>/<workspace>/state.json      readable export of any other workspace
<root>/<workspace>/log/...         the transaction log     (LocalObjectStore)
<root>/<workspace>/log/.ccstate-serial  serials handed out  (LocalSequencer)
<root>/<workspace>/snapshots/...   materialized snapshots  (LocalObjectStore)
<root>/<workspace>/locks/...       lease files             (LocalLockManager)

With the ``kms_key`` setting (``CCSTATE_KMS_KEY``), every object body is envelope-encrypted
under a KMS data key (``backends.crypto``), and no plaintext state.json export is written.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

from ccstate.backends.base import Backend, BackendSpec
from ccstate.backends.config import Settings
from ccstate.backends.local_locks import LocalLockManager
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.backends.local_paths import (  # noqa: F401  (re-exported)
    DEFAULT_WORKSPACE,
    local_export_path,
    warn_if_shared,
)
from ccstate.backends.local_serials import LocalSequencer
from ccstate.service.ports import Clock


def open_local_backend(
    spec: BackendSpec, settings: Settings, *, clock: Clock | None = None
) -> Backend:
    if spec.path is None:
        raise ValueError(f"not a local backend spec: {spec.url}")
    root = Path(spec.path)
    objects = LocalObjectStore(root)  # the first write creates the root, 0700
    warn_if_shared(root)
    return Backend(
        url=spec.url,
        objects=objects,
        locks=LocalLockManager(root, clock),
        export_path=str(local_export_path(root, settings)),
        options={"workspace": settings.workspace},
        sequencer=LocalSequencer(root),
        # Each commit read here is a file read, not a request: the pointer's tail (S3) would
        # only add a pointer rewrite every few commits (docs/decisions.md, "Local writers").
        store_options={"tail_every": 0},
    )


async def encrypt_local_backend(backend: Backend, kms_key: str, region: str | None) -> Backend:
    """Wrap ``backend``'s objects in client-side envelope encryption under ``kms_key``.

    The readable state.json export is switched off: it would hold the state in plaintext.
    """
    from ccstate.backends import aws
    from ccstate.backends.crypto import EncryptingObjectStore, KmsEnvelopeCipher

    stack = AsyncExitStack()
    try:
        session = aws.new_session(region)
        kms = await aws.open_client(stack, session, "kms", region=region)
        whoami = aws.CallerLookup(session, region=region)
        cipher = KmsEnvelopeCipher(kms, kms_key, whoami=whoami)
    except BaseException:
        await stack.aclose()
        raise
    backend.objects = EncryptingObjectStore(backend.objects, cipher)
    backend.export_path = None
    backend.options.update(encrypt="client", kms_key=kms_key)
    backend._closers.append(stack.aclose)
    return backend
