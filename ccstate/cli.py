"""The ``ccstate`` command line: argparse, one module per command group.

Each module in ``COMMANDS`` defines ``register(subparsers, common)`` and gives each leaf
parser ``parents=[common]`` and ``set_defaults(handler=...)``; a handler is
``async def handler(ctx: CliContext) -> int | None`` (or a plain function for commands that run
their own event loop, such as ``sandbox``). A module that does not exist yet is skipped.

Start-up time is part of the interface (an MCP client starts ``ccstate serve`` for every session;
docs/performance.md): only the named command's module is imported, and ``ccstate --help`` lists
the commands from the table below without importing any of them. A test checks the table
against what each module registers.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ccstate.output import FORMATS

log = logging.getLogger("ccstate")


class Command:
    def __init__(self, name: str, module: str, help_text: str) -> None:
        self.name, self.module, self.help = name, module, help_text


COMMANDS = [
    Command("state", "ccstate.commands.state", "Inspect, restore, export and import the state."),
    Command("lock", "ccstate.commands.lock", "List and force-unlock state locks."),
    Command(
        "sandbox",
        "ccstate.commands.sandbox",
        "Run the offline AWS sandbox (moto + Cloud Control) on 127.0.0.1.",
    ),
    Command(
        "serve",
        "ccstate.commands.serve",
        "Run the MCP server for AI assistants (stdio by default).",
    ),
    Command(
        "drift",
        "ccstate.commands.drift",
        "Detect drift between the state and AWS, record it, and optionally fix it.",
    ),
    Command("backend", "ccstate.commands.backend", "Set up the team backend (S3, DynamoDB, KMS)."),
    Command("bootstrap", "ccstate.commands.backend", "Same as `ccstate backend bootstrap`."),
    Command(
        "graph",
        "ccstate.commands.graph",
        "Show the dependency graph of the managed resources.",
    ),
    Command(
        "rollback",
        "ccstate.commands.rollback",
        "Roll one resource back to what a past change (by its token) left or found.",
    ),
    Command(
        "impact",
        "ccstate.commands.impact",
        "Analyse a change before making it: replacements, broken dependents, risk.",
    ),
    Command(
        "import",
        "ccstate.commands.state",
        "Adopt an existing AWS resource: read it through Cloud Control and record it.",
    ),
    Command(
        "scanner", "ccstate.commands.scanner", "Install and check the security scanner (checkov)."
    ),
    Command("recover", "ccstate.commands.recover", "Record the outcome of interrupted changes."),
    Command(
        "users",
        "ccstate.commands.users",
        "Manage the team server's users and bearer tokens.",
    ),
    Command("stack", "ccstate.commands.stack", "Deploy, list and destroy stacks of resources."),
]
COMMAND_MODULES = list(dict.fromkeys(command.module for command in COMMANDS))

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports it
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata is
    slow to import)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from ccstate.service import __version__

        print(f"ccstate {__version__}")
        parser.exit()


def common_options(*, after_command: bool = True) -> argparse.ArgumentParser:
    """Options every command accepts before or after its name (``ccstate -v state list`` and
    ``ccstate state list -v``). After the name they default to SUPPRESS, so a value given
    before the name is not reset by the command's own parser."""
    common = argparse.ArgumentParser(add_help=False)
    if after_command:
        common.argument_default = argparse.SUPPRESS
    group = common.add_argument_group("common options")
    group.add_argument(
        "--backend",
        metavar="URL",
        help="state backend: file:///path or s3://bucket/prefix?table=... "
        "(env CCSTATE_BACKEND; default ~/.aws/ccapi-mcp-server)",
    )
    group.add_argument(
        "--workspace",
        metavar="NAME",
        help="workspace name (env CCSTATE_WORKSPACE; default default)",
    )
    group.add_argument(
        "--output",
        choices=FORMATS,
        help="table for people, json for scripts (env CCSTATE_OUTPUT; default table)",
    )
    group.add_argument(
        "--lock-timeout",
        metavar="SECONDS",
        help="how long to wait for a lock held by someone else (default 30)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS if after_command else 0,
        help="log more to stderr (-vv: debug)",
    )
    return common


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. Given ``argv`` naming a command, only that command's module is imported, so
    `ccstate state list` does not load the MCP server's dependencies. Without one (``--help``,
    a typo) the commands are listed from ``COMMANDS`` and no module is imported."""
    parser = argparse.ArgumentParser(
        prog="ccstate",
        parents=[common_options(after_command=False)],
        description="Persistent, team-shared, audited state for the AWS Cloud Control API.",
        epilog="Run 'ccstate <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    named = _module_for(argv)
    if named is None:
        for command in COMMANDS:
            subparsers.add_parser(command.name, help=command.help)
        return parser
    module = _import_optional(named)
    if module is not None:
        module.register(subparsers, common_options())
    return parser


def _module_for(argv: Sequence[str] | None) -> str | None:
    args = list(argv or [])
    # The first word that is neither an option nor a global option's value names the command.
    words = [a for i, a in enumerate(args) if not a.startswith("-") and _is_word(args, i)]
    first = words[0] if words else None
    return next((command.module for command in COMMANDS if command.name == first), None)


_VALUE_OPTIONS = frozenset({"--backend", "--workspace", "--output", "--lock-timeout"})


def _is_word(args: list[str], index: int) -> bool:
    return index == 0 or args[index - 1] not in _VALUE_OPTIONS


def _import_optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the module exists but one of its own imports is missing: a real error
        return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _configure_logging(getattr(args, "verbose", 0))
    handler = getattr(args, "handler", None)
    if handler is None:
        (getattr(args, "group_parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    return _run(handler, args)


def _run(handler: Any, args: argparse.Namespace) -> int:
    import asyncio
    import inspect

    from ccstate.context import CliContext, output_format
    from ccstate.exit_codes import exit_code_for
    from ccstate.output import Output
    from ccstate.service.errors import CcstateError
    from ccstate.wakeup import Terminated, woken_by_signals

    json_requested = getattr(args, "output", None) == "json"
    try:
        out = Output(output_format(getattr(args, "output", None), os.environ))
        json_requested = out.is_json
        ctx = CliContext(args, out)
        coroutine = inspect.iscoroutinefunction(handler)
        result = asyncio.run(woken_by_signals(handler(ctx))) if coroutine else handler(ctx)
        return EXIT_OK if result is None else int(result)
    except CcstateError as err:
        report_error(err, json_requested)
        return exit_code_for(err)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("Terminated.", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:  # `ccstate state pull | head`: the reader left, which is fine
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        print(
            f"Error: unexpected {type(exc).__name__}: {_masked(str(exc))}\n"
            "Next: this is a bug in ccstate; rerun with -vv and report the output (secrets in "
            "it are redacted; look it over before you share it).",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED


def report_error(err: Any, as_json: bool) -> None:
    """An error as the CLI shows it: the JSON shape, or 'Error:' and 'Next:' lines on stderr;
    next steps in the CLI's words (commands, not MCP tools)."""
    from ccstate.wording import CLI_WORDS

    if as_json:
        from ccstate.output import to_json_text

        sys.stdout.write(_masked(to_json_text(err.to_dict(CLI_WORDS))) + "\n")
        sys.stdout.flush()
        return
    lines = [f"Error: {err.message}"]
    next_step = err.next_step_in(CLI_WORDS)
    if next_step:
        lines.append(f"Next: {next_step}")
    for note in getattr(err, "__notes__", []):
        lines.append(note)
    print(_masked("\n".join(lines)), file=sys.stderr)


def _masked(text: str) -> str:
    """Credentials in URLs, keys and tokens of known formats never reach the terminal."""
    from ccstate.service.changes.secrets import scrub_text

    return scrub_text(text, lambda _secret: "***", formats_only=True)


def _configure_logging(verbosity: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    from ccstate.service.changes.log_redaction import redact_log_handlers

    redact_log_handlers()  # secrets never reach the log, at any level


def _silence_stdout() -> None:
    # Python flushes stdout at exit; point it at devnull so that flush cannot fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
