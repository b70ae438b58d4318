"""Soak: three team servers on one S3 backend (the sandbox's moto), 20 authenticated clients,
mixed operations, one server killed with SIGKILL mid-run (benchmarks/team_soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.team_soak import SoakConfig, run_soak


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_three_servers_twenty_clients_and_a_sigkill_lose_nothing(tmp_path: Path) -> None:
    result = run_soak(SoakConfig(servers=3, clients=20, ops_per_client=3), tmp_path)
    checks = result["checks"]

    assert result["killed_server"] == 0
    assert result["lock_held_at_kill"] is not None  # it died holding a lock
    assert result["operations"] == 60
    assert result["successful_mutations"] > 0
    assert result["ok_after_kill"] > 0  # the other servers kept working
    assert checks["missing_serials"] == []  # the log is complete
    assert checks["successes_not_in_lineage"] == []
    assert checks["successes_not_exactly_once"] == []
    assert checks["locks_left_by_others"] == 0
    assert len(checks["locks_taken_over"]) == checks["locks_left_by_killed_server"]
    assert checks["locks_remaining"] == 0
