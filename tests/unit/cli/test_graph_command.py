"""``ccstate graph`` in-process on a real local backend: a key, a bucket it encrypts and a role
whose policy names the bucket, recorded through the store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from ccstate.backends.local_objects import LocalObjectStore
from ccstate.service.state.model import CommitMeta, Principal, ResourceChange
from ccstate.service.state.store import StateStore

from ccstate.cli import main
from tests.unit.graph.test_graph import chain

KEY = chain()[0].identifier


@pytest.fixture
def backend(tmp_path: Path) -> Path:
    root = tmp_path / "state"

    async def record() -> None:
        store = StateStore(LocalObjectStore(root), "default")
        for node in chain():
            change = ResourceChange(
                identifier=node.identifier,
                resource_type=node.resource_type,
                operation="create",
                properties_after=node.properties,
            )
            await store.commit([change], CommitMeta(principal=Principal(user="t")))

    asyncio.run(record())
    return root


def run(capsys: pytest.CaptureFixture[str], backend: Path, *args: str) -> tuple[int, str, str]:
    code = main(["graph", *args, "--backend", str(backend), "--offline-schemas"])
    out, err = capsys.readouterr()
    return code, out, err


def test_graph_json_names_key_bucket_role(capsys, backend: Path) -> None:
    code, out, _ = run(capsys, backend, "--format", "json")
    assert code == 0
    edges = {(e["from"], e["to"], e["provenance"]) for e in json.loads(out)["edges"]}
    assert edges == {(KEY, "b1", "value"), ("b1", "r1", "value")}


def test_output_json_alone_means_json(capsys, backend: Path) -> None:
    code, out, _ = run(capsys, backend, "--output", "json")
    assert code == 0 and json.loads(out)["nodes"]


def test_graph_of_one_resource_in_each_format(capsys, backend: Path) -> None:
    code, text, _ = run(capsys, backend, "r1")
    assert code == 0 and "Neighbourhood of r1" in text and "depends on b1" in text
    code, mermaid, _ = run(capsys, backend, "b1", "--format", "mermaid")
    assert code == 0 and mermaid.startswith("flowchart LR") and mermaid.count("-->") == 2
    code, dot, _ = run(capsys, backend, KEY, "--format", "dot")
    assert code == 0 and '"b1" -> "r1"' in dot


def test_unknown_identifier_says_what_next(capsys, backend: Path) -> None:
    code, _, err = run(capsys, backend, "nope")
    assert code == 3
    assert "No resource 'nope'" in err and "ccstate state list" in err
