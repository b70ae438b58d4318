"""CLI command groups; each module registers its parsers with ``register(subparsers, common)``."""

from __future__ import annotations

import argparse


def add_group(
    subparsers: argparse._SubParsersAction, name: str, help_text: str
) -> argparse._SubParsersAction:
    """A command group such as ``state``; run alone it prints its own help (exit 2)."""
    group = subparsers.add_parser(name, help=help_text, description=help_text)
    group.set_defaults(handler=None, group_parser=group)
    return group.add_subparsers(dest=f"{name}_command", metavar="<subcommand>")
