"""What the MCP tools are given: the parts ``ccstate.app.open_server`` wired, nothing more.

``mcp_server/`` builds nothing itself: it registers tools on a ``Runtime``. ``identify`` is
called once per tool call and returns the ``Principal`` of that request (on stdio the local
person with the AWS caller ARN; on a team HTTP server, the authenticated user).

``LazyRuntime`` is the same parts opened on first need: the stdio server lists its tools
before the state, the token workflow and the service code behind them are imported and built
(docs/decisions.md, "The server lists its tools before it opens the state"). The service types
below are imported for type checking only, for the same reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccstate.service.authz.policy import Policy
    from ccstate.service.authz.principal import Principal
    from ccstate.service.changes.executor import ResourceOperations
    from ccstate.service.changes.template import TemplateService
    from ccstate.service.changes.workflow import Workflow
    from ccstate.service.drift.detect import DriftDetector
    from ccstate.service.drift.remediate import DriftRemediator
    from ccstate.service.state.store import StateStore
    from ccstate.service.state.usecases import StateTools


@dataclass
class Runtime:
    store: StateStore
    workflow: Workflow
    operations: ResourceOperations
    state_tools: StateTools
    detector: DriftDetector
    remediator: DriftRemediator
    policy: Policy
    identify: Callable[[], Awaitable[Principal]]
    auto_remediation: bool = False
    workspace: str = "default"
    templates: TemplateService | None = None  # create_template
    extras: dict[str, Any] = field(default_factory=dict)  # for tool modules added later

    @property
    def readonly(self) -> bool:
        return self.policy.readonly


Opener = Callable[[], AbstractAsyncContextManager[Runtime]]


class LazyRuntime:
    """A ``Runtime`` opened by ``open()`` (the server calls it before every tool call), for
    tool modules registered before it exists. Once open, its attributes are the runtime's.
    Before, the parts a module takes at registration (``runtime.workflow``, ``runtime.extras
    ["stacks"]``) are ``Part`` handles that reach the real part on use; ``extras`` holds the
    names given here, as ``open_server`` wires them. Opening is retried after a failure.
    ``async with`` closes what was opened."""

    def __init__(self, opener: Opener, *, extras: Iterable[str] = ()) -> None:
        self._opener = opener
        self._extra_names = tuple(extras)
        self._stack = AsyncExitStack()
        self._runtime: Runtime | None = None
        self._lock = asyncio.Lock()
        self._open = asyncio.Event()

    @property
    def opened(self) -> Runtime | None:
        return self._runtime

    async def open(self) -> Runtime:
        if self._runtime is not None:
            return self._runtime
        async with self._lock:
            if self._runtime is None:
                self._runtime = await self._stack.enter_async_context(self._opener())
                self._open.set()
        return self._runtime

    async def wait_open(self) -> Runtime:
        """The runtime, once something opened it."""
        await self._open.wait()
        assert self._runtime is not None
        return self._runtime

    async def __aenter__(self) -> LazyRuntime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._runtime is not None:
            return getattr(self._runtime, name)
        if name == "extras":
            return {key: Part(self, "extras", key) for key in self._extra_names}
        if name in Runtime.__dataclass_fields__:
            return Part(self, name)
        raise AttributeError(f"{name!r} is known once the runtime is open")


class Part:
    """A part of a ``LazyRuntime`` taken before it opened: attribute access reaches the part of
    the open runtime (a tool is only ever called once it is open)."""

    def __init__(self, runtime: LazyRuntime, name: str, key: str | None = None) -> None:
        self._runtime = runtime
        self._name = name
        self._key = key

    def resolve(self) -> Any:
        opened = self._runtime.opened
        if opened is None:
            raise RuntimeError(f"runtime.{self._name} used before the runtime was opened")
        part = getattr(opened, self._name)
        return part if self._key is None else part[self._key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)
