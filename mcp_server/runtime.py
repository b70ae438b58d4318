"""What the MCP tools are given: the parts ``ccstate.app.open_server`` wired, nothing more.

``mcp_server/`` builds nothing itself: it registers tools on a ``Runtime``. ``identify`` is
called once per tool call and returns the ``Principal`` of that request (on stdio the local
person with the AWS caller ARN; on a team HTTP server, the authenticated user).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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
