"""What a person and what a script see."""

from __future__ import annotations

import io
import json

from ccstate.output import Output


def test_json_output_is_sorted_and_ignores_the_renderer() -> None:
    stdout = io.StringIO()
    out = Output("json", stdout=stdout)
    out.emit({"b": 1, "a": [1]}, lambda console: console.print("for people"))
    assert stdout.getvalue() == json.dumps({"a": [1], "b": 1}, indent=2) + "\n"


def test_table_output_uses_the_renderer_without_markup_codes() -> None:
    stdout = io.StringIO()
    Output("table", stdout=stdout).emit({"a": 1}, lambda console: console.print("hello"))
    assert stdout.getvalue() == "hello\n"


def test_progress_is_silent_when_not_a_terminal() -> None:
    stderr = io.StringIO()
    out = Output("table", stdout=io.StringIO(), stderr=stderr)
    with out.progress(3, "working") as bar:
        bar.advance()
    assert stderr.getvalue() == ""
