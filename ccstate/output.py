"""How CLI commands speak: stable JSON on stdout, or readable rich tables for a person.

Commands build one plain ``dict``/``list`` (the JSON shape, documented in docs/cli.md) and a
``render`` function for people. With ``--output json`` only the JSON is printed; otherwise only
``render`` runs. Progress bars and logs go to stderr so stdout stays parseable.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:  # rich is imported when something is drawn: JSON output never needs it
    from rich.console import Console
    from rich.progress import Progress

OutputFormat = Literal["table", "json"]
FORMATS: tuple[OutputFormat, ...] = ("table", "json")
# Wide enough that identifiers such as queue URLs are not wrapped when stdout is a pipe or file.
PIPE_WIDTH = 200

Render = Callable[["Console"], None]


def to_json_text(data: Any) -> str:
    """The stable JSON form: sorted keys, two-space indent, UTF-8 characters kept readable."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


class ProgressBar:
    """What ``Output.progress`` yields: call ``advance`` as work completes."""

    def __init__(self, progress: Progress | None, task_id: int | None) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, amount: int = 1) -> None:
        if self._progress is not None and self._task_id is not None:
            self._progress.advance(self._task_id, amount)  # type: ignore[arg-type]


class Output:
    def __init__(
        self,
        fmt: OutputFormat = "table",
        *,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.format: OutputFormat = fmt
        self._stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr

    @cached_property
    def console(self) -> Console:
        return make_console(self._stdout)

    @cached_property
    def err_console(self) -> Console:
        return make_console(self._stderr)

    @property
    def is_json(self) -> bool:
        return self.format == "json"

    def emit(self, data: dict[str, Any] | list[Any], render: Render | None = None) -> None:
        """Print ``data`` as JSON (``--output json``), else let ``render`` draw it for people."""
        if self.is_json or render is None:
            self.write_text(to_json_text(data) + "\n")
        else:
            render(self.console)

    def write_text(self, text: str) -> None:
        """Raw text on stdout, e.g. a document for a pipe. No markup, no wrapping."""
        self._stdout.write(text)
        self._stdout.flush()

    def note(self, message: str) -> None:
        """A remark for the person at the terminal (stderr): never part of the JSON output."""
        self.err_console.print(message, highlight=False)

    @contextmanager
    def progress(self, total: int, description: str) -> Iterator[ProgressBar]:
        """A progress bar on stderr; silent for JSON output and when stderr is not a terminal."""
        if self.is_json or not self.err_console.is_terminal:
            yield ProgressBar(None, None)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.err_console, transient=True) as bar:
            task_id = bar.add_task(description, total=total)
            yield ProgressBar(bar, task_id)


def make_console(stream: TextIO) -> Console:
    """A console for ``stream``: colours on a terminal, plain and wide in a pipe or file. With
    NO_COLOR set (https://no-color.org) no escape code at all: rich's own NO_COLOR handling
    drops colours but keeps bold and dim."""
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR"))
    console = Console(file=stream, highlight=False, soft_wrap=False)
    if plain and console.is_terminal:
        console = Console(file=stream, highlight=False, soft_wrap=False, color_system=None)
    elif not console.is_terminal:
        console = Console(file=stream, highlight=False, width=PIPE_WIDTH, color_system=None)
    return console
