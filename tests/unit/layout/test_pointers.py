"""Messages and help point at what an installed user has, not at files of the source tree that
the wheel does not ship (docs/, infra/)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FACES = ("ccstate", "backends", "mcp_server", "service", "sandbox")
UNSHIPPED = re.compile(r"\b(docs/[\w./-]+|infra/[\w./-]+)")


def _strings_that_are_not_docstrings(tree: ast.AST) -> list[ast.Constant]:
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            docstrings.add(id(first.value))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_message_names_a_file_the_wheel_does_not_ship() -> None:
    offenders = []
    for folder in FACES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in _strings_that_are_not_docstrings(tree):
                for found in UNSHIPPED.findall(node.value):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {found}")
    assert offenders == []


def test_the_backend_template_ships_and_prints() -> None:
    printed = subprocess.run(
        [str(Path(sys.executable).with_name("ccstate")), "bootstrap", "--print-template"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == (ROOT / "infra" / "state-backend.yaml").read_text()


def test_claude_mcp_add_lines_put_options_before_the_name() -> None:
    lines = [
        line.split()
        for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
        for line in doc.read_text().splitlines()
        if line.startswith("claude mcp add")
    ]
    assert lines
    for words in lines:
        before_command = words[3 : words.index("--")]
        name = before_command[-1]
        assert not name.startswith("-"), words
        options = before_command[:-1]
        assert all(o.startswith("-") for o in options[::2]), words  # --flag value pairs
