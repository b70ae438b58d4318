"""Soak: three team servers on one S3 backend (the sandbox's moto), 20 authenticated clients,
mixed operations, one server killed with SIGKILL mid-run; the same code as the 2,000-operation
benchmark (benchmarks/team_soak.py), with fewer operations."""

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
    # The log is complete, and every success is in it exactly once.
    assert checks["missing_serials"] == []
    assert checks["successes_not_in_lineage"] == []
    assert checks["successes_not_exactly_once"] == []
    # The killed server's locks were taken over after the lease: by `ccstate recover`, which
    # recorded its changes in flight, or (a lock taken before its intent) by the next acquire.
    held = set(checks["locks_at_kill"])
    assert result["lock_held_at_kill"] in held
    assert held <= set(checks["taken_over_by_recover"]) | set(checks["locks_taken_over"])
    # The lease runs from the killed server's last renewal (every third of a lease), which
    # may precede the kill: a takeover never comes sooner than two thirds of a lease after it.
    lease = result["config"]["lease_seconds"]
    assert checks["recover_seconds"] >= lease * 2 / 3 or not checks["taken_over_by_recover"]
    assert checks["locks_left_by_others"] == 0
    assert checks["locks_remaining"] == 0
    assert checks["intents_open"] == 0
