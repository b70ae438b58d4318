"""Three of moto's per-request costs that do not change moto's answers, taken out.

- ``BackendDict[account]`` takes moto's global ``backend_lock`` (an RLock) on every lookup,
  only to create the account's backends the first time; a request looks up three or four.
  With sixteen requests in flight the threads queue on that lock. Once the account exists
  (moto registers the dict under the same lock when it creates it, and ``reset`` clears both
  under it), the lookup is a plain dict read.
- Every request lists its response class's methods with ``inspect.getmembers`` to check the
  action exists. A class's methods do not change while the server runs.
- ``camelcase_to_underscores`` (a pure function of a short string) runs character by
  character, fourteen times for one SQS GetQueueAttributes; it is memoized.
"""

from __future__ import annotations

import functools
import sys
import threading
from typing import Any

_applied = False
_lock = threading.Lock()


def apply() -> None:
    """Install both shortcuts in this process (idempotent)."""
    global _applied
    with _lock:
        if _applied:
            return
        _lookup_existing_accounts_without_lock()
        _cache_response_method_names()
        _memoize_camelcase_to_underscores()
        _applied = True


def _lookup_existing_accounts_without_lock() -> None:
    from moto.core.base_backend import BackendDict

    create_and_get = BackendDict.__getitem__

    def getitem(self: BackendDict[Any], account_id: str) -> Any:
        found = dict.get(self, account_id)
        return create_and_get(self, account_id) if found is None else found

    BackendDict.__getitem__ = getitem  # type: ignore[method-assign]


def _cache_response_method_names() -> None:
    import moto.core.responses as responses

    responses.method_names_from_class = functools.cache(responses.method_names_from_class)  # type: ignore[attr-defined]


def _memoize_camelcase_to_underscores() -> None:
    """Replace the function in moto.core.utils, so service modules imported later get the
    memoized one, and in every moto module already imported."""
    import moto.core.utils as utils

    original = utils.camelcase_to_underscores
    memoized = functools.lru_cache(maxsize=4096)(original)
    for name, module in list(sys.modules.items()):
        if (
            name.startswith("moto")
            and getattr(module, "camelcase_to_underscores", None) is original
        ):
            module.camelcase_to_underscores = memoized  # type: ignore[attr-defined]
