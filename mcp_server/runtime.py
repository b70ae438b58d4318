"""The parts one server process runs on, opened together and closed together.

    async with open_runtime(ServerOptions(...)) as runtime:
        runtime.workflow / runtime.operations / runtime.state_tools / runtime.store

The backend (state, locks, tokens, redaction salt) comes from ``backends.factory``; the cloud
from ``backends.cloudcontrol`` (honours AWS_ENDPOINT_URL); schemas from CloudFormation with the
cfn-lint fallback; the scanner from ``backends.checkov_scanner`` unless SECURITY_SCANNING is
disabled.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccstate.backends.base import Backend
from ccstate.backends.config import Settings, load_drift_rules, load_settings
from ccstate.backends.factory import build_store
from ccstate.service.authz.tokens import TokenService
from ccstate.service.changes.executor import OperationSettings, ResourceOperations
from ccstate.service.changes.redaction import load_salt
from ccstate.service.changes.scanning import DisabledScanner, ScanResult, scanning_disabled
from ccstate.service.changes.tagging import default_tags_enabled
from ccstate.service.changes.template import TemplateService
from ccstate.service.changes.workflow import Redactor, Workflow, WorkflowConfig
from ccstate.service.drift.detect import DriftDetector
from ccstate.service.ports import cloud_in
from ccstate.service.state.model import Principal, StateDocument
from ccstate.service.state.store import StateStore
from ccstate.service.state.usecases import StateTools

log = logging.getLogger(__name__)

USER_ENV = "CCSTATE_USER"


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


@dataclass
class Runtime:
    settings: Settings
    backend: Backend
    store: StateStore
    workflow: Workflow
    operations: ResourceOperations
    state_tools: StateTools
    options: ServerOptions
    templates: TemplateService
    extras: dict[str, Any] = field(default_factory=dict)  # for tool modules added later


@asynccontextmanager
async def open_runtime(options: ServerOptions) -> AsyncIterator[Runtime]:
    from ccstate.backends.factory import open_backend

    settings = load_settings(
        {
            "backend": options.backend,
            "workspace": options.workspace,
            "token_ttl": options.token_ttl,
            "lock_timeout": options.lock_timeout,
        }
    )
    async with AsyncExitStack() as stack:
        backend = await open_backend(settings.backend_url, settings=settings)
        stack.push_async_callback(backend.close)
        cloud = await _cloud(stack, settings)
        store = build_store(backend, settings)
        salt = await load_salt(backend.objects, settings.workspace)
        tokens = TokenService(backend.objects, settings.workspace, ttl_seconds=settings.token_ttl)
        env = options.env
        config = WorkflowConfig(
            readonly=options.readonly,
            scanning_enabled=not scanning_disabled(dict(env)),
            default_tags=default_tags_enabled(env),
            region=settings.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            env=env,
            accept_critical_findings=settings.accept_critical_findings,
        )
        schemas = _schemas(settings, options)
        workflow = Workflow(
            cloud,
            schemas,
            tokens,
            Redactor(salt),
            config,
            user=local_principal(env),
            scanner=_scanner(config.scanning_enabled),
        )
        operations = ResourceOperations(
            workflow,
            store,
            backend.locks,
            OperationSettings(
                workspace=settings.workspace,
                lock_lease_seconds=settings.lock_lease,
                lock_timeout_seconds=settings.lock_timeout,
                operation_timeout_seconds=options.operation_timeout,
            ),
        )
        state_tools = StateTools(
            workflow,
            store,
            readonly=options.readonly,
            save=_saver(backend.export_path),
            lock=operations.locked,
        )
        log.info(
            "serving workspace '%s' on %s%s",
            settings.workspace,
            backend.url,
            " (read-only)" if options.readonly else "",
        )
        templates = TemplateService(
            cloud_for=lambda region: cloud_in(cloud, region),
            schemas=schemas,
            store=store,
            objects=backend.objects,
            workspace=settings.workspace,
            redact=workflow.redact,
            generator=None if options.offline_schemas else _iac_generator(cloud),
        )
        yield Runtime(
            settings, backend, store, workflow, operations, state_tools, options, templates
        )


def drift_detector(runtime: Runtime, *, concurrency: int | None = None) -> DriftDetector:
    """The drift detector of this runtime, with the user's ``drift_rules`` file applied; the
    CLI and the MCP tools both build it here."""
    options: dict[str, Any] = {"severity_rules": load_drift_rules(runtime.settings)}
    if concurrency is not None:
        options["concurrency"] = concurrency
    workflow = runtime.workflow
    return DriftDetector(workflow.cloud, workflow.schemas, runtime.store, **options)


def local_principal(env: Mapping[str, str]) -> Principal:
    """Who this server acts for: $CCSTATE_USER, else the local login, on this host."""
    user = env.get(USER_ENV)
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = f"uid-{os.getuid()}"
    return Principal(user=user, host=socket.gethostname())


def _saver(export_path: str | None) -> Any:
    if not export_path:
        return None

    async def save(doc: StateDocument) -> str:
        from ccstate.backends.export import write_document

        return str(write_document(Path(export_path), doc))

    return save


async def _cloud(stack: AsyncExitStack, settings: Settings) -> Any:
    from ccstate.backends.cloudcontrol import CloudControlProvider

    cloud = CloudControlProvider(region=settings.region)
    closer = getattr(cloud, "close", None)
    if closer is not None:
        stack.push_async_callback(closer)
    return cloud


def _iac_generator(cloud: Any) -> Any:
    from ccstate.backends.iac_generator import CloudFormationIacGenerator

    return CloudFormationIacGenerator(cloud)


def _schemas(settings: Settings, options: ServerOptions) -> Any:
    from ccstate.backends.schemas import CloudFormationSchemaProvider

    return CloudFormationSchemaProvider(region=settings.region, offline=options.offline_schemas)


class UnavailableScanner:
    """What runs when checkov is not installed: nothing is authorized, and it says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def scan(self, resource_type: str, properties: dict[str, Any]) -> ScanResult:
        return ScanResult(status="UNAVAILABLE", message=self.reason, scanner="none")


def _scanner(enabled: bool) -> Any:
    if not enabled:
        return DisabledScanner()
    try:
        from ccstate.backends.checkov_scanner import CheckovScanner
    except ImportError as exc:
        return UnavailableScanner(
            f"The security scanner cannot be loaded ({exc}). Install it with "
            "`pip install 'ccstate[scan]'`, or start the server with SECURITY_SCANNING=disabled."
        )
    return CheckovScanner()
