"""The one place that wires the parts, for each way ccstate runs.

- ``open_state``: a CLI state command: settings, backend, state store. No cloud, no tokens.
- ``open_drift``: ``ccstate drift``: the store, Cloud Control, schemas and the detector; the
  token workflow, the executor and a scanner only with ``--fix`` (a scan builds none of them).
- ``open_server``: the MCP server (stdio or HTTP): everything the tools use, as the
  ``mcp_server.runtime.Runtime`` that ``mcp_server.server.build_server`` registers tools on.
- ``serve``: run the server on its transport, with the sandbox and the drift monitor if asked.

Who a request acts for is established here too (``LocalIdentity``): the faces ask it once per
request and pass the ``Principal`` into the use cases. ``mcp_server/`` never imports this
module, and nothing here is imported by a CLI state command that does not need it.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # imported where used: `ccstate serve` lists its tools before it needs them
    from ccstate.backends.base import Backend
    from ccstate.backends.config import Settings
    from ccstate.service.authz.policy import Policy
    from ccstate.service.authz.principal import Established, Principal
    from ccstate.service.ports import CloudProvider, SchemaProvider
    from ccstate.service.state.model import StateDocument
    from ccstate.service.state.store import StateStore

log = logging.getLogger(__name__)

# What ``open_server`` wires into ``Runtime.extras`` (the stdio server names them before it
# opens the runtime: the tool modules register by them).
SERVER_EXTRAS = ("users", "admin", "stacks", "rollbacks", "impact")
# The stdio server opens its runtime on the first tool call, or this long after it starts
# serving, so that interrupted changes are settled and the scanner warmed in any case.
OPEN_AFTER_SECONDS = 1.0

USER_ENV = "CCSTATE_USER"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
Transport = Literal["stdio", "http"]


@dataclass(frozen=True)
class ServerOptions:
    backend: str | None = None
    workspace: str | None = None
    readonly: bool = False
    token_ttl: float | None = None
    lock_timeout: float | None = None
    operation_timeout: float = 600.0
    offline_schemas: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class ServeConfig:
    options: ServerOptions
    transport: Transport = "stdio"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    sandbox: bool = False
    sandbox_endpoint: str | None = None
    drift_interval: float | None = None  # seconds between scheduled drift checks
    team: TeamOptions = field(default_factory=lambda: TeamOptions())


@dataclass(frozen=True)
class TeamOptions:
    """The HTTP server's authentication and TLS (docs/team.md)."""

    auth: bool = True  # False only with --no-auth, and only on loopback
    public_url: str | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwks_url: str | None = None
    jwks_file: Path | None = None
    jwt_user_claim: str = "sub"


# --------------------------------------------------------------------------- who asks


def local_person(env: Mapping[str, str]) -> tuple[str, Established]:
    """$CCSTATE_USER (declared), else the login of this process (os-user)."""
    declared = env.get(USER_ENV)
    if declared:
        return declared, "declared"
    try:
        return getpass.getuser(), "os-user"
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return f"uid-{os.getuid()}", "os-user"


class LocalIdentity:
    """The principal of a request on stdio and in the CLI: the local person on this host,
    with the AWS caller ARN of this process's credentials (STS, asked once)."""

    def __init__(self, env: Mapping[str, str], cloud: CloudProvider | None) -> None:
        self._person, self._established = local_person(env)
        self._host = socket.gethostname()
        self._cloud = cloud
        self._arn: str | None = None

    async def __call__(self) -> Principal:
        from ccstate.service.authz.principal import Principal

        if self._arn is None and self._cloud is not None:
            self._arn = (await self._cloud.caller_identity()).arn
        return Principal(self._person, self._established, self._arn, self._host)


# --------------------------------------------------------------------------- the parts


def settings_for(options: ServerOptions) -> Settings:
    from ccstate.backends.config import load_settings

    return load_settings(_setting_flags(options))


def check_settings(options: ServerOptions) -> None:
    """Raise what ``settings_for`` would raise; without pydantic when no value needs it
    (``light_settings`` never accepts what pydantic refuses)."""
    from ccstate.backends.config_layers import light_settings

    if light_settings(_setting_flags(options)) is None:
        settings_for(options)


def _setting_flags(options: ServerOptions) -> dict[str, Any]:
    return {
        "backend": options.backend,
        "workspace": options.workspace,
        "token_ttl": options.token_ttl,
        "lock_timeout": options.lock_timeout,
    }


@asynccontextmanager
async def open_state(settings: Settings) -> AsyncIterator[tuple[Backend, StateStore]]:
    """The backend and the workspace's store: all a CLI state command needs."""
    from ccstate.backends.factory import build_store, open_backend  # open_backend: the AWS SDK

    backend = await open_backend(settings.backend_url, settings=settings)
    try:
        yield backend, build_store(backend, settings)
    finally:
        await backend.close()


@dataclass
class DriftParts:
    settings: Settings
    store: StateStore
    detector: Any  # DriftDetector
    remediator: Any | None  # DriftRemediator, only when fixes were asked for
    identify: LocalIdentity


@asynccontextmanager
async def open_drift(
    options: ServerOptions, *, fix: bool, concurrency: int | None = None
) -> AsyncIterator[DriftParts]:
    """What ``ccstate drift`` runs on. A scan needs the store, the cloud and the schemas; the
    token workflow and a scanner are built only to fix."""
    from ccstate.service.drift.detect import DriftDetector

    settings = settings_for(options)
    async with AsyncExitStack() as stack:
        backend, store = await stack.enter_async_context(open_state(settings))
        cloud = await _cloud(stack, settings)
        schemas = _schemas(settings, options)
        detector = DriftDetector(cloud, schemas, store, **_drift_options(settings, concurrency))
        remediator = None
        if fix:
            workflow, operations, _ = await _changes(
                backend, store, cloud, schemas, settings, options
            )
            remediator = _remediator(detector, workflow, operations)
        yield DriftParts(settings, store, detector, remediator, LocalIdentity(options.env, cloud))


@asynccontextmanager
async def open_server(options: ServerOptions, *, metrics: Any = None) -> AsyncIterator[Any]:
    """Everything the MCP tools use, as an ``mcp_server.runtime.Runtime``; with ``metrics``
    (the HTTP server's), commits and lock waits are counted, and the team's user directory
    is in ``runtime.extras['users']``."""
    from ccstate.mcp_server.runtime import Runtime
    from ccstate.service.authz.admin import TeamAdmin
    from ccstate.service.authz.users import UserDirectory
    from ccstate.service.drift.detect import DriftDetector
    from ccstate.service.state.usecases import StateTools

    settings = settings_for(options)
    async with AsyncExitStack() as stack:
        backend, store = await stack.enter_async_context(open_state(settings))
        locks = backend.locks
        if metrics is not None:
            from ccstate.mcp_server.metrics import TimedLocks, count_commits

            count_commits(store, metrics)
            locks = TimedLocks(locks, metrics)
        cloud = await _cloud(stack, settings)
        schemas = _schemas(settings, options)
        workflow, operations, policy = await _changes(
            backend, store, cloud, schemas, settings, options, locks=locks
        )
        state_tools = StateTools(
            workflow,
            store,
            policy=policy,
            save=_saver(backend.export_path),
            lock=operations.locked,
        )
        detector = DriftDetector(cloud, schemas, store, **_drift_options(settings, None))
        log.info(
            "serving workspace '%s' on %s%s",
            settings.workspace,
            backend.url,
            " (read-only)" if options.readonly else "",
        )
        yield Runtime(
            store=store,
            workflow=workflow,
            operations=operations,
            state_tools=state_tools,
            detector=detector,
            remediator=_remediator(detector, workflow, operations),
            policy=policy,
            identify=LocalIdentity(options.env, cloud),
            auto_remediation=settings.auto_remediation,
            workspace=settings.workspace,
            templates=_templates(backend, store, cloud, schemas, workflow, settings, options),
            extras={
                "users": UserDirectory(backend.objects),
                "admin": TeamAdmin(UserDirectory(backend.objects), locks, policy),
                "stacks": _stacks(backend, store, workflow, operations, settings),
                **_change_extras(store, cloud, schemas, workflow, operations),
            },
        )


@dataclass
class ChangeParts:
    """What ``ccstate rollback`` and ``ccstate impact`` run on: the whole change stack."""

    settings: Settings
    store: StateStore
    cloud: CloudProvider
    schemas: SchemaProvider
    rollbacks: Any  # service.changes.rollback.Rollbacks
    impact: Any  # service.changes.impact.ImpactAnalyzer
    identify: LocalIdentity


@asynccontextmanager
async def open_changes(options: ServerOptions) -> AsyncIterator[ChangeParts]:
    settings = settings_for(options)
    async with AsyncExitStack() as stack:
        backend, store = await stack.enter_async_context(open_state(settings))
        cloud = await _cloud(stack, settings)
        schemas = _schemas(settings, options)
        workflow, operations, _ = await _changes(backend, store, cloud, schemas, settings, options)
        extras = _change_extras(store, cloud, schemas, workflow, operations)
        yield ChangeParts(
            settings,
            store,
            cloud,
            schemas,
            extras["rollbacks"],
            extras["impact"],
            LocalIdentity(options.env, cloud),
        )


def _change_extras(
    store: StateStore, cloud: Any, schemas: Any, workflow: Any, operations: Any
) -> dict[str, Any]:
    """Rollbacks and impact analysis; the analyser guards every execution of this executor."""
    from ccstate.service.changes.impact import ImpactAnalyzer
    from ccstate.service.changes.rollback import Rollbacks
    from ccstate.service.changes.runner import ChangeRunner
    from ccstate.service.graph.state import build_graph

    runner = ChangeRunner(workflow, operations)
    impact = ImpactAnalyzer(
        store,
        cloud,
        schemas,
        workflow.tokens,
        workflow.scanner,
        redact=workflow.redact,
        load_graph=build_graph,
        default_tags=workflow.config.default_tags,
    )
    operations.guards.append(impact.guard)
    return {
        "rollbacks": Rollbacks(store, cloud, schemas, runner, redact=workflow.redact),
        "impact": impact,
    }


@asynccontextmanager
async def open_recovery(options: ServerOptions, *, wait: float | None = None) -> AsyncIterator[Any]:
    """What ``ccstate recover`` runs on: the store, Cloud Control, schemas, the redactor and
    the reconciler (a ``changes.reconcile.Reconciler``); no scanner."""
    settings = settings_for(options)
    async with AsyncExitStack() as stack:
        backend, store = await stack.enter_async_context(open_state(settings))
        cloud = await _cloud(stack, settings)
        schemas = _schemas(settings, options)
        _, operations, _ = await _changes(
            backend, store, cloud, schemas, settings, options, scan=False
        )
        reconciler = operations.reconciler
        if wait is not None:
            reconciler.wait_seconds = wait
        yield reconciler


async def _changes(
    backend: Backend,
    store: StateStore,
    cloud: CloudProvider,
    schemas: SchemaProvider,
    settings: Settings,
    options: ServerOptions,
    *,
    scan: bool = True,
    locks: Any = None,
) -> tuple[Any, Any, Policy]:
    """The token workflow and the executor: what a change needs."""
    from ccstate.service.authz.policy import Policy
    from ccstate.service.authz.tokens import TokenService
    from ccstate.service.changes.executor import OperationSettings, ResourceOperations
    from ccstate.service.changes.redaction import load_salt
    from ccstate.service.changes.scanning import scanning_disabled
    from ccstate.service.changes.tagging import default_tags_enabled
    from ccstate.service.changes.workflow import Redactor, Workflow, WorkflowConfig

    env = options.env
    policy = Policy(readonly=options.readonly)
    config = WorkflowConfig(
        scanning_enabled=not scanning_disabled(dict(env)),
        default_tags=default_tags_enabled(env),
        region=settings.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        env=env,
        accept_critical_findings=settings.accept_critical_findings,
    )
    workflow = Workflow(
        cloud,
        schemas,
        TokenService(backend.objects, settings.workspace, ttl_seconds=settings.token_ttl),
        Redactor(await load_salt(backend.objects, settings.workspace)),
        config,
        scanner=_scanner(config.scanning_enabled and scan),
        policy=policy,
    )
    operations = ResourceOperations(
        workflow,
        store,
        locks or backend.locks,
        OperationSettings(
            workspace=settings.workspace,
            lock_lease_seconds=settings.lock_lease,
            lock_timeout_seconds=settings.lock_timeout,
            operation_timeout_seconds=options.operation_timeout,
        ),
    )
    return workflow, operations, policy


@dataclass
class StackParts:
    stacks: Any  # StackOperations
    identify: LocalIdentity


@asynccontextmanager
async def open_stacks(
    options: ServerOptions, *, concurrency: int = 10
) -> AsyncIterator[StackParts]:
    """What ``ccstate stack`` runs on: the token workflow, the executor and the stack journal."""
    settings = settings_for(options)
    async with AsyncExitStack() as stack:
        backend, store = await stack.enter_async_context(open_state(settings))
        cloud = await _cloud(stack, settings)
        schemas = _schemas(settings, options)
        workflow, operations, _ = await _changes(backend, store, cloud, schemas, settings, options)
        parts = _stacks(backend, store, workflow, operations, settings, concurrency)
        yield StackParts(parts, LocalIdentity(options.env, cloud))


def _stacks(
    backend: Backend,
    store: StateStore,
    workflow: Any,
    operations: Any,
    settings: Settings,
    concurrency: int = 10,
) -> Any:
    from ccstate.service.changes.runner import ChangeRunner
    from ccstate.service.stacks.journal import JournalStore
    from ccstate.service.stacks.operations import StackOperations

    journal = JournalStore(backend.objects, settings.workspace)
    runner = ChangeRunner(workflow, operations)
    return StackOperations(runner, store, journal, concurrency=concurrency)


def _templates(
    backend: Backend,
    store: StateStore,
    cloud: CloudProvider,
    schemas: SchemaProvider,
    workflow: Any,
    settings: Settings,
    options: ServerOptions,
) -> Any:
    """create_template: the IaC generator when the server talks to AWS, else built offline."""
    from ccstate.service.changes.template import TemplateService
    from ccstate.service.ports import cloud_in

    generator = None
    if not options.offline_schemas:  # built on first use: it imports the AWS SDK
        generator = _Deferred(lambda: _iac_generator(cloud))
    return TemplateService(
        cloud_for=lambda region: cloud_in(cloud, region),
        schemas=schemas,
        store=store,
        objects=backend.objects,
        workspace=settings.workspace,
        redact=workflow.redact,
        generator=generator,
    )


def _iac_generator(cloud: Any) -> Any:
    from ccstate.backends.iac_generator import CloudFormationIacGenerator

    return CloudFormationIacGenerator(cloud)


def _remediator(detector: Any, workflow: Any, operations: Any) -> Any:
    from ccstate.service.changes.runner import ChangeRunner
    from ccstate.service.drift.remediate import DriftRemediator

    return DriftRemediator(detector, ChangeRunner(workflow, operations))


def _drift_options(settings: Settings, concurrency: int | None) -> dict[str, Any]:
    """The user's ``drift_rules`` file applied; the CLI and the MCP tools both build it here."""
    from ccstate.backends.config import load_drift_rules

    options: dict[str, Any] = {"severity_rules": load_drift_rules(settings)}
    if concurrency is not None:
        options["concurrency"] = concurrency
    return options


def _saver(export_path: str | None) -> Any:
    if not export_path:
        return None

    async def save(doc: StateDocument) -> str:
        from ccstate.backends.export import write_document

        return str(write_document(Path(export_path), doc))

    return save


async def _cloud(stack: AsyncExitStack, settings: Settings) -> Any:
    cloud = _Deferred(lambda: _cloud_provider(settings))
    stack.push_async_callback(cloud.close_if_built)
    return cloud


def _cloud_provider(settings: Settings) -> Any:
    from ccstate.backends.cloudcontrol import CloudControlProvider

    return CloudControlProvider(region=settings.region)


class _Deferred:
    """The Cloud Control provider, built on its first use. Importing aioboto3 and botocore takes
    about 0.3 s, which a client would wait for before the server answers ``tools/list``
    (docs/performance.md); most sessions start by listing tools, many never touch AWS."""

    def __init__(self, build: Any) -> None:
        self._build = build
        self._built: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._built is None:
            self._built = self._build()
        return getattr(self._built, name)

    async def close_if_built(self) -> None:
        closer = getattr(self._built, "close", None)
        if closer is not None:
            await closer()


def _schemas(settings: Settings, options: ServerOptions) -> Any:
    from ccstate.backends.schemas import CloudFormationSchemaProvider

    return CloudFormationSchemaProvider(region=settings.region, offline=options.offline_schemas)


def _scanner(enabled: bool) -> Any:
    from ccstate.service.changes.scanning import DisabledScanner, UnavailableScanner

    if not enabled:
        return DisabledScanner()
    try:
        from ccstate.backends.checkov_scanner import CheckovScanner
    except ImportError as exc:
        return UnavailableScanner(
            f"The security scanner cannot be loaded ({exc}). Install it with "
            "`ccstate scanner install`, or start the server with SECURITY_SCANNING=disabled."
        )
    return CheckovScanner()


# --------------------------------------------------------------------------- serving


async def serve_async(
    config: ServeConfig,
    loaded: tuple[Any, Any] | None = None,
    streams: tuple[Any, Any] | None = None,
) -> None:
    """``_serve``, with Ctrl-C and SIGTERM waking the loop from any thread (ccstate/wakeup.py)."""
    from ccstate.wakeup import signals_wake_the_loop

    async with signals_wake_the_loop():
        await _serve(config, loaded, streams)


async def _serve(
    config: ServeConfig,
    loaded: tuple[Any, Any] | None = None,
    streams: tuple[Any, Any] | None = None,
) -> None:
    """Serve until the client leaves (stdio) or the process is told to stop. On the way out,
    changes still in flight are waited for (stdin closed) or cut (SIGTERM): a cut change
    releases its lock and leaves its intent for the reconciler of the next start.

    On stdio the tools are registered before the runtime opens (settings are checked first,
    so a configuration error still stops the start): the client's ``tools/list`` does not
    wait for the state, the token workflow or their imports. The runtime opens on the first
    tool call or ``OPEN_AFTER_SECONDS`` after the start; recovery, the scanner's warm-up and
    the drift monitor start once it is open. ``loaded`` and ``streams``: the stdio prelude's
    (``serve``), the runtime and server it loaded and the streams that replay what it read."""
    import anyio

    from ccstate.mcp_server.server import run_transport

    if config.transport == "http":
        await serve_team(config)
        return
    if loaded is None:
        check_settings(config.options)  # a configuration error stops the start, as before
        loaded = load_stdio_server(config)
    lazy, server = loaded
    async with lazy:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_until_terminated, tasks.cancel_scope)
            tasks.start_soon(_open_soon, lazy)
            tasks.start_soon(_once_open, lazy, config)
            await run_transport(server, config.transport, config.host, config.port, streams)
            if lazy.opened is not None:
                await lazy.opened.operations.drain()
            tasks.cancel_scope.cancel()
        if lazy.opened is not None:
            await lazy.opened.operations.abort()


def load_stdio_server(config: ServeConfig) -> tuple[Any, Any]:
    """The stdio server's lazy runtime and its server, every tool registered (the SDK's import
    is most of it)."""
    from ccstate.mcp_server.runtime import LazyRuntime
    from ccstate.mcp_server.server import build_server

    lazy = LazyRuntime(lambda: open_server(config.options), extras=SERVER_EXTRAS)
    return lazy, build_server(lazy)


def serve_stdio_with_prelude(config: ServeConfig) -> None:
    """Serve on stdio, answering the session's opening requests from the memo while a thread
    imports the SDK (``mcp_server.stdio_prelude``)."""
    import anyio

    from ccstate.mcp_server import stdio_memo
    from ccstate.mcp_server import stdio_prelude as prelude

    check_settings(config.options)  # a configuration error stops the start, as before
    loader = prelude.Loader(lambda: load_stdio_server(config))
    memo = stdio_memo.Memo.load(stdio_memo.memo_path(), stdio_memo.code_fingerprint())
    with prelude.claimed_wire() as wire:
        opening = prelude.Opening(memo)
        try:
            started = prelude.answer_until_loaded(wire, opening, loader.wake_fd)
        finally:
            loaded = loader.result()
        stdout = prelude.FilteredStdout(wire, opening)
        streams = (prelude.ReplayedStdin(wire, started, stdout.settled), stdout)
        anyio.run(serve_async, config, loaded, streams)


async def _open_soon(lazy: Any) -> None:
    """Open the runtime a while after the start if no tool call has (a failure is logged; the
    next tool call tries again and answers with the error)."""
    import anyio

    await anyio.sleep(OPEN_AFTER_SECONDS)
    try:
        await lazy.open()
    except Exception as exc:
        log.warning("could not open the state; tool calls will try again: %s", exc)


async def _once_open(lazy: Any, config: ServeConfig) -> None:
    """What runs beside the stdio server once its runtime is open."""
    import anyio

    from ccstate.mcp_server.tools_drift import monitor_drift

    runtime = await lazy.wait_open()
    async with anyio.create_task_group() as tasks:
        if config.drift_interval:
            tasks.start_soon(monitor_drift, runtime, config.drift_interval)
        if not runtime.readonly:
            tasks.start_soon(recover_on_start, runtime.operations)
        tasks.start_soon(warm_scanner, runtime.workflow.scanner)


async def recover_on_start(operations: Any) -> None:
    """Settle the changes an earlier server left open (in the background: tools answer
    meanwhile; a change of the same resource waits for the lock, or settles it itself)."""
    try:
        settled = await operations.reconciler.recover(trigger="server start")
    except Exception as exc:  # the server serves on; `ccstate recover` says more
        log.warning("could not settle interrupted changes at start: %s", exc)
        return
    for item in settled:
        log.warning(
            "interrupted %s of %s %s: %s%s",
            item.operation,
            item.resource_type,
            item.identifier or "",
            item.result,
            f" ({item.message})" if item.message else "",
        )


async def warm_scanner(scanner: Any) -> None:
    """Start the checkov worker in the background, so the first scan does not wait for
    checkov's import (about 2 s of CPU, once per server)."""
    warm_up = getattr(scanner, "warm_up", None)
    if warm_up is None:
        return
    try:
        await warm_up()
    except Exception as exc:  # the first scan starts it again, and says why it cannot
        log.warning("could not start the security scanner ahead of the first scan: %s", exc)


async def _until_terminated(scope: Any) -> None:
    """Cancel ``scope`` on SIGTERM (``wakeup.on_sigterm``: not anyio's signal receiver, whose
    removal would undo ``signals_wake_the_loop`` for the rest of the shutdown)."""
    import anyio

    from ccstate.wakeup import on_sigterm

    terminated = anyio.Event()
    with on_sigterm(terminated.set):
        await terminated.wait()
        log.warning("SIGTERM: stopping; changes in flight are left to the reconciler")
        scope.cancel()


async def serve_team(config: ServeConfig) -> None:
    """The team server: streamable HTTP with authentication, roles, /healthz and /metrics."""
    from ccstate.mcp_server.auth import JwtSettings
    from ccstate.mcp_server.http import HttpOptions, check_binding, serve_http_team
    from ccstate.mcp_server.metrics import Metrics
    from ccstate.mcp_server.tools_drift import monitor_drift

    team = config.team
    http = HttpOptions(
        host=config.host,
        port=config.port,
        public_url=team.public_url,
        certfile=team.certfile,
        keyfile=team.keyfile,
        auth=team.auth,
    )
    check_binding(http)  # before opening anything
    jwt = None
    if team.jwt_issuer:
        jwt = JwtSettings(
            issuer=team.jwt_issuer,
            audience=team.jwt_audience or http.resource_url,
            jwks_url=team.jwks_url,
            jwks_file=team.jwks_file,
            user_claim=team.jwt_user_claim,
        )
    metrics = Metrics()
    async with open_server(config.options, metrics=metrics) as runtime:
        interval = config.drift_interval

        async def monitor() -> None:
            import anyio

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(warm_scanner, runtime.workflow.scanner)
                if not runtime.readonly:
                    tasks.start_soon(recover_on_start, runtime.operations)
                if interval:
                    tasks.start_soon(monitor_drift, runtime, interval)

        await serve_http_team(
            runtime,
            http,
            users=runtime.extras["users"],
            jwt=jwt,
            metrics=metrics,
            background=monitor,
        )


def serve(config: ServeConfig) -> int:
    """Run until the client disconnects (stdio) or the process is interrupted (http)."""
    import anyio

    from ccstate.mcp_server.stdio_memo import memo_enabled

    with _aws_endpoint(config) as options:
        config = replace(config, options=options)
        if config.transport == "stdio" and memo_enabled() and _stdio_on_descriptors():
            serve_stdio_with_prelude(config)
        else:
            anyio.run(serve_async, config)
    return 0


def _stdio_on_descriptors() -> bool:
    """The prelude reads fd 0 and writes fd 1: only when they are the process's stdio and fd 0
    is a pipe or a socket, as an MCP client gives (a file or the null device cannot be waited
    on: epoll refuses them)."""
    try:
        if sys.stdin.fileno() != 0 or sys.stdout.fileno() != 1:
            return False
        mode = os.fstat(0).st_mode
    except (AttributeError, ValueError, OSError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextmanager
def _aws_endpoint(config: ServeConfig) -> Iterator[ServerOptions]:
    """Point every AWS client of this process at the sandbox when asked to."""
    options = config.options
    if config.sandbox_endpoint:
        os.environ["AWS_ENDPOINT_URL"] = config.sandbox_endpoint
        yield replace(options, env=dict(os.environ), offline_schemas=True)
        return
    if not config.sandbox:
        yield options
        return
    from ccstate.sandbox import Sandbox

    with Sandbox() as sandbox, _sandbox_backend(options) as options:
        os.environ.update(sandbox.env())
        log.warning("sandbox (offline AWS) on %s", sandbox.endpoint_url)
        yield replace(options, env=dict(os.environ), offline_schemas=True)


@contextmanager
def _sandbox_backend(options: ServerOptions) -> Iterator[ServerOptions]:
    """Sandbox resources vanish with the process; so does their state, unless a backend is
    named. It never mixes with the real state in ~/.aws/ccapi-mcp-server."""
    if options.backend or os.environ.get("CCSTATE_BACKEND"):
        yield options
        return
    with tempfile.TemporaryDirectory(prefix="ccstate-sandbox-") as tmp:
        backend = os.path.join(tmp, "state")
        log.warning("sandbox state in %s (removed on exit; pass --backend to keep it)", backend)
        yield replace(options, backend=backend)
