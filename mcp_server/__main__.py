"""``python -m ccstate.mcp_server``: the same server as ``ccstate serve`` (same options).

An entry point, not a library module: it hands over to the CLI shell, which wires the parts
(``ccstate.app``). Nothing else in ``mcp_server/`` imports the shell.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from ccstate.cli import main as cli_main

    return cli_main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
