"""Printing helpers for walkthroughs meant to be read by a person (``make demo``).

They write to stdout (a demo's output *is* its product) and number the steps, so the MCP demo can
reuse them unchanged: ``say`` for narration, ``command`` for the CLI line a reader could type,
``run_cli`` to run that line for real in this process and show its output.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from rich.rule import Rule

from ccstate.cli import main as cli_main
from ccstate.output import make_console


class DemoPrinter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.console = make_console(self.stream)
        self._step = 0

    def title(self, text: str) -> None:
        self.console.print(Rule(text))

    def step(self, text: str) -> None:
        self._step += 1
        self.console.print()
        self.console.print(f"[bold]Step {self._step}. {text}[/bold]")

    def say(self, text: str) -> None:
        self.console.print(f"  {text}", markup=False)

    def command(self, argv: Sequence[str]) -> None:
        self.console.print(f"  $ {shlex.join(argv)}", style="cyan", markup=False)

    def block(self, text: str) -> None:
        """Verbatim text (a file, a JSON document), indented."""
        for line in text.rstrip("\n").splitlines():
            self.console.print(f"    {line}", markup=False, soft_wrap=True)

    def run_cli(self, args: Sequence[str]) -> int:
        """Run ``ccstate <args>`` in this process, showing the command and its output."""
        self.command(["ccstate", *args])
        self.stream.flush()
        code = cli_main(list(args))
        sys.stdout.flush()
        if code != 0:
            self.say(f"(exit code {code})")
        return code

    def tree(self, root: Path) -> None:
        """The files under ``root`` with their modes, to show what is stored where."""
        for path in sorted(root.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            mode = oct(path.stat().st_mode & 0o777)[2:]
            kind = "/" if path.is_dir() else f"  {path.stat().st_size:>6} bytes"
            self.console.print(
                f"    {mode}  {path.relative_to(root).as_posix()}{kind}", markup=False
            )
