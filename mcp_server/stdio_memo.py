"""The memo of the stdio server's answers to a session's opening requests
(``mcp_server.stdio_prelude``): the SDK's own answers, for one fingerprint of the code, in
``$XDG_CACHE_HOME/ccstate/stdio-answers.json``. It holds the tool list and the instructions,
which are no secret; it is written atomically with mode 0600 all the same. This module must
stay light: it runs before the SDK and pydantic are imported."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = "ccstate.stdio-answers/1"
MEMO_ENV = "CCSTATE_STDIO_MEMO"
MAX_ANSWERS = 32
PACKAGES_OF_THE_ANSWERS = ("mcp", "mcp_types", "pydantic", "pydantic_core")


def memo_enabled(env: Mapping[str, str] = os.environ) -> bool:
    return env.get(MEMO_ENV, "1").lower() not in {"0", "off", "false", "no"}


def memo_path(env: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/ccstate/stdio-answers.json`` (default ``~/.cache``)."""
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "ccstate" / "stdio-answers.json"


def code_fingerprint(
    sources: Iterable[str] | None = None, sites: Iterable[str] | None = None
) -> str:
    """What the answers depend on: this Python and its -O level (-OO strips the docstrings
    that describe the tools), every source file of ccstate (path, size, mtime) and every
    distribution installed beside the SDK (a reinstall changes its ``.dist-info``), and where
    the SDK is imported from. A few milliseconds; the SDK itself is not imported. ``sources`` and
    ``sites``: other folders than ccstate's and the SDK's."""
    digest = hashlib.sha256(f"{sys.version}\0{sys.prefix}\0{sys.flags.optimize}\0".encode())
    for root in sorted(_source_roots() if sources is None else sources):
        for entry in _python_files(root):
            digest.update(_file_line(entry).encode())
    for site in sorted(_site_dirs() if sites is None else sites):
        digest.update(f"{site}\0".encode())
        for entry in sorted(os.scandir(site), key=lambda e: e.name):
            if entry.name.endswith(".dist-info"):
                digest.update(f"{entry.name}\0{entry.stat().st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _file_line(entry: os.DirEntry[str]) -> str:
    try:
        stat = entry.stat()
    except OSError:  # a dangling link (an editor's lock file), or gone since the scan
        return f"{entry.path}\0-\0"
    return f"{entry.path}\0{stat.st_size}\0{stat.st_mtime_ns}\0"


def _source_roots() -> set[str]:
    """ccstate's folders (installed as subpackages: ``ccstate.service`` is ``service/``)."""
    roots: set[str] = set()
    for name in ("ccstate", "ccstate.service", "ccstate.backends", "ccstate.mcp_server"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.update(spec.submodule_search_locations)
    return roots


def _python_files(root: str) -> Iterator[os.DirEntry[str]]:
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                yield from _python_files(entry.path)
            elif entry.name.endswith(".py"):
                yield entry


def _site_dirs() -> set[str]:
    sites = set()
    for name in PACKAGES_OF_THE_ANSWERS:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            sites.add(str(Path(spec.origin).parent.parent))
    return sites


class Memo:
    """The SDK's answers to opening requests, for one fingerprint of the code."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.answers: dict[str, Any] = {}
        self.changed = False
        self.unwritable = False

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> Memo:
        memo = cls(path, fingerprint)
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return memo
        except (OSError, ValueError) as exc:
            log.warning(
                "the stdio answer memo %s is unreadable (%s); it will be rewritten", path, exc
            )
            return memo
        if not _is_memo(document):
            log.warning(
                "the stdio answer memo %s is not one ccstate wrote; it will be rewritten", path
            )
        elif document["fingerprint"] == fingerprint:
            memo.answers = document["answers"]
        return memo

    def get(self, key: str) -> Any:
        return self.answers.get(key)

    def record(self, key: str, result: Any) -> None:
        """Keep ``result`` (None: forget the key: the SDK answered with an error)."""
        if self.answers.get(key) == result:
            return
        self.answers.pop(key, None)
        if result is not None:
            self.answers[key] = result
        while len(self.answers) > MAX_ANSWERS:
            del self.answers[next(iter(self.answers))]
        self.changed = True

    def save(self) -> None:
        """Atomically, mode 0600; a failure is logged, and not tried again by this process
        (the memo only saves time; the server saves after every message that changed it)."""
        if not self.changed or self.unwritable:
            return
        document = {"format": FORMAT, "fingerprint": self.fingerprint, "answers": self.answers}
        try:
            _write_private(self.path, document)
        except OSError as exc:
            log.warning("could not write the stdio answer memo %s: %s", self.path, exc)
            self.unwritable = True
            return
        self.changed = False


def _write_private(path: Path, document: Any) -> None:
    """Atomically (a temporary file renamed over ``path``, removed if anything fails), 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".stdio-answers.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, separators=(",", ":"))
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _is_memo(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("format") == FORMAT
        and isinstance(document.get("fingerprint"), str)
        and isinstance(document.get("answers"), dict)
    )
