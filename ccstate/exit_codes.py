"""The CLI's exit codes (docs/cli.md), from the machine code of a domain error.

The domain errors carry no exit code; this table is the CLI's. A subclass without an entry
takes its nearest base class's code (``integrity_error`` is a ``state_corrupt``).
"""

from __future__ import annotations

from ccstate.service.errors import CcstateError

EXIT_CODES: dict[str, int] = {
    "error": 1,
    "invalid_input": 2,
    "config_error": 2,
    "not_found": 3,
    "state_conflict": 4,
    "precondition_failed": 4,
    "import_refused": 4,
    "state_corrupt": 5,
    "unsupported_version": 5,
    "migration_failed": 5,
    "lock_error": 6,
    "backend_error": 7,
    "token_error": 8,
    "read_only": 8,
    "cloud_operation_failed": 9,
    "policy_denied": 8,
}


def exit_code_for(err: CcstateError) -> int:
    for cls in type(err).__mro__:
        code = getattr(cls, "code", None)
        if code in EXIT_CODES:
            return EXIT_CODES[code]
    return 1
