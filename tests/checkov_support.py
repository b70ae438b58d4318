"""Tests that run the real checkov: `make install` provides it (in .venv-checkov), and `make
test` sets CCSTATE_REQUIRE_CHECKOV=1 so that they fail, not skip, when it is missing."""

from __future__ import annotations

import os

import pytest
from ccstate.backends.checkov_scanner import locate_checkov

FOUND = locate_checkov()
REQUIRED = os.environ.get("CCSTATE_REQUIRE_CHECKOV") == "1"

if REQUIRED and FOUND is None:
    raise RuntimeError(
        "CCSTATE_REQUIRE_CHECKOV=1 but no checkov was found: run `make install` "
        "(it creates .venv-checkov) or `ccstate scanner install`."
    )

requires_checkov = pytest.mark.skipif(
    FOUND is None, reason="checkov is not installed (make install, or ccstate scanner install)"
)
