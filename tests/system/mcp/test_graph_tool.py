"""``show_dependency_graph`` through a real MCP client session on a `ccstate serve` process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

from tests.system.mcp.conftest import ServerFactory
from tests.unit.graph.test_graph import chain

KEY = chain()[0].identifier


def record_chain(backend: Path) -> None:
    async def record() -> None:
        store = StateStore(LocalObjectStore(backend), "default")
        changes = [
            ResourceChange(
                identifier=n.identifier,
                resource_type=n.resource_type,
                operation="create",
                properties_after=n.properties,
            )
            for n in chain()
        ]
        await store.commit(changes, CommitMeta(principal=Principal(user="t")))

    asyncio.run(record())


def test_show_dependency_graph_returns_json_and_mermaid(
    start_server: ServerFactory, module_dir: Path
) -> None:
    backend = module_dir / "graph"
    backend.mkdir(mode=0o700)
    record_chain(backend)
    server = start_server(backend, name="graph")
    assert "show_dependency_graph" in server.tool_names()

    whole = server.ok("show_dependency_graph")
    edges = {(e["from"], e["to"]) for e in whole["graph"]["edges"]}
    assert edges == {(KEY, "b1"), ("b1", "r1")}
    assert whole["mermaid"].startswith("flowchart LR")

    around = server.ok("show_dependency_graph", identifier="r1")
    assert around["graph"]["focus"] == "r1"
    assert {n["identifier"] for n in around["graph"]["nodes"]} == {KEY, "b1", "r1"}

    missing = server.call("show_dependency_graph", identifier="nope")
    assert missing.error == "not_found", missing.data
