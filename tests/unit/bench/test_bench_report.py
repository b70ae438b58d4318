"""`make bench` keeps its report out of tracked files; `--update-docs` (make bench-docs) writes
the tracked report and docs/performance.md. Runs a stand-in scenario, not the real ones."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

import benchmarks.__main__ as bench


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    scenario = types.ModuleType("fake_bench")
    scenario.NAME = "fake"  # type: ignore[attr-defined]
    scenario.run = lambda: {"value": 42}  # type: ignore[attr-defined]
    scenario.markdown = lambda result: f"value is {result['value']}"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_bench", scenario)
    monkeypatch.setattr(bench, "SCENARIOS", ["fake_bench"])
    where = {
        "REPORT": tmp_path / "benchmarks" / "report.json",
        "LOCAL_REPORT": tmp_path / ".bench" / "report.json",
        "PERFORMANCE_DOC": tmp_path / "docs" / "performance.md",
    }
    where["REPORT"].parent.mkdir()
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    for name, path in where.items():
        monkeypatch.setattr(bench, name, path)
    return where


def test_bench_writes_only_the_untracked_report(paths: dict[str, Path]) -> None:
    assert bench.main([]) == 0

    local = json.loads(paths["LOCAL_REPORT"].read_text())
    assert local["scenarios"]["fake"]["result"] == {"value": 42}
    assert not paths["REPORT"].exists()
    assert not paths["PERFORMANCE_DOC"].exists()


def test_update_docs_writes_the_tracked_report_and_the_page(paths: dict[str, Path]) -> None:
    assert bench.main(["--update-docs"]) == 0

    assert json.loads(paths["REPORT"].read_text())["scenarios"]["fake"]["result"]["value"] == 42
    assert "value is 42" in paths["PERFORMANCE_DOC"].read_text()
