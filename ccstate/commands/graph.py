"""``ccstate graph [ID] [--format text|json|mermaid|dot] [--offline-schemas]``: the dependency
graph of the managed resources, or one resource's neighbourhood (what it depends on and what
depends on it, transitively). Reads the state only; schemas come from CloudFormation
(cached) or, offline, from the schemas cfn-lint ships."""

from __future__ import annotations

import argparse

from ccstate.context import CliContext
from ccstate.service.graph.render import FORMATS, render
from ccstate.service.graph.state import load_graph
from ccstate.service.names import validate_identifier


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    help_text = "Show the dependency graph of the managed resources."
    parser = subparsers.add_parser("graph", help=help_text, description=help_text, parents=[common])
    parser.add_argument(
        "identifier",
        nargs="?",
        metavar="ID",
        help="only this resource, what it depends on and what depends on it",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="text (default), json, mermaid or dot (Graphviz); --output json means json",
    )
    parser.add_argument(
        "--offline-schemas",
        action="store_true",
        help="read resource schemas only from the ones bundled with cfn-lint (no AWS call)",
    )
    parser.set_defaults(handler=graph)


async def graph(ctx: CliContext) -> None:
    from ccstate.backends.schemas import CloudFormationSchemaProvider

    identifier = validate_identifier(ctx.args.identifier) if ctx.args.identifier else None
    fmt = ctx.args.format or ("json" if ctx.out.is_json else "text")
    schemas = CloudFormationSchemaProvider(
        region=ctx.settings.region, offline=ctx.args.offline_schemas
    )
    async with ctx.open_state() as (_, store):
        view = await store.current()
        data = await load_graph(view.resources, schemas, identifier)
    ctx.out.write_text(render(data, fmt))
