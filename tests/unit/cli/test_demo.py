"""The store walkthrough of `make demo` (`--store-only`) runs end to end and shows its steps."""

from __future__ import annotations

import pytest

from ccstate import demo


def test_store_walkthrough_records_restores_and_exports(capsys, monkeypatch) -> None:
    # The demo points the CLI at its temporary backend through the environment.
    monkeypatch.setenv("CCSTATE_BACKEND", "unused")
    monkeypatch.setenv("CCSTATE_WORKSPACE", "default")
    assert demo.main(["--store-only"]) == 0
    out = capsys.readouterr().out
    assert "serial 6: alice delete" in out
    assert "Restored workspace 'default' to serial 3 as new serial 7" in out
    assert '"version": "1.0"' in out  # the export is printed
    assert "600  default/log/00000000000000000007.json" in out
    assert "(exit code" not in out


def test_demo_help_exits_cleanly(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        demo.main(["--help"])
    assert stop.value.code == 0
