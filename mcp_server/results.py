"""How tool results and errors reach the MCP client: structured JSON either way.

A tool body returns a plain dict; ``tool_result`` turns it into a ``CallToolResult`` with the
JSON as text (for clients that only read text) and as ``structuredContent``. A ``CcstateError``
becomes ``isError: true`` with its ``to_dict()`` (error code, message, next step in MCP words --
``wording.MCP_WORDS`` -- and details), so
the assistant can tell the user what happened and what to do next. Anything else is a bug: it is
logged with its traceback and reported as an internal error without leaking internals.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ParamSpec

from ccstate.mcp_server.outputs import AnyOutput
from ccstate.mcp_server.wording import MCP_WORDS
from ccstate.service.errors import CcstateError, InvalidInput
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

P = ParamSpec("P")
BeforeCall = Callable[[], Awaitable[Any]]


def ok(data: dict[str, Any]) -> CallToolResult:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=json.loads(text),
    )


def failed(error: dict[str, Any]) -> CallToolResult:
    text = json.dumps(error, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=json.loads(text),
        is_error=True,
    )


def tool_result(
    fn: Callable[P, Awaitable[dict[str, Any]]] | None = None,
    *,
    output: type[BaseModel] = AnyOutput,
) -> Any:
    """Wrap a tool body: dict -> structured result, CcstateError -> structured tool error.

    ``output`` is the model the tool declares as its ``outputSchema`` (``@tool_result`` alone:
    any JSON object; ``@tool_result(output=ChangeOutput)``: that shape).
    """
    if fn is None:
        return functools.partial(tool_result, output=output)
    return _wrap(fn, output)


def _wrap(
    fn: Callable[P, Awaitable[dict[str, Any]]], output: type[BaseModel]
) -> Callable[P, Awaitable[CallToolResult]]:

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> CallToolResult:
        try:
            return ok(await fn(*args, **kwargs))
        except CcstateError as exc:
            log.info("tool %s refused: %s", fn.__name__, exc)
            return failed(exc.to_dict(MCP_WORDS))
        except Exception:
            log.exception("tool %s failed unexpectedly", fn.__name__)
            return failed(
                {
                    "error": "internal_error",
                    "message": f"{fn.__name__} failed unexpectedly; nothing was committed "
                    "to the state by this call unless its history shows otherwise.",
                    "next_step": "Check the server log (stderr) and report the problem.",
                }
            )

    # The SDK reads the parameters from the signature, and the outputSchema from the model in
    # the return annotation; the result is ours, already converted (and checked by the SDK).
    returns = Annotated[CallToolResult, output]
    signature = inspect.signature(fn, eval_str=True)
    wrapper.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**fn.__annotations__, "return": returns}
    del wrapper.__wrapped__  # type: ignore[attr-defined]
    return wrapper


class StructuredErrorServer(MCPServer):
    """The SDK's server, but arguments that fail the input schema (a missing or mistyped
    argument) and unknown tool names answer with the documented error object, not plain text.
    The rejected values are not echoed: they are the caller's data and may be secrets.

    ``before_call``: awaited before each tool call (``LazyRuntime.open``: the stdio server
    opens its runtime on first need); what it raises is the call's error object."""

    def __init__(self, *args: Any, before_call: BeforeCall | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._before_call = before_call

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Any = None
    ) -> CallToolResult | InputRequiredResult:
        if self._before_call is not None:
            refused = await _opened(self._before_call)
            if refused is not None:
                return refused
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc, UnexpectedToolError):
                raise
            if isinstance(exc.__cause__, ValidationError):
                return failed(invalid_arguments(name, exc.__cause__).to_dict())
            if self._tool_manager.get_tool(name) is None:
                return failed(unknown_tool(name).to_dict())
            raise

    async def run_stdio_streams(self, stdin: Any, stdout: Any) -> None:
        """``run_stdio_async`` on the given streams (``mcp_server.stdio_prelude``'s)."""
        from mcp.server.stdio import stdio_server

        lowlevel = self._lowlevel_server
        async with stdio_server(stdin, stdout) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


async def _opened(before_call: BeforeCall) -> CallToolResult | None:
    try:
        await before_call()
    except CcstateError as exc:
        log.warning("the server could not open its state: %s", exc)
        return failed(exc.to_dict(MCP_WORDS))
    except Exception:
        log.exception("the server could not open its state")
        return failed(
            {
                "error": "internal_error",
                "message": "The server could not open its state; nothing was done.",
                "next_step": "Check the server log (stderr) and report the problem.",
            }
        )
    return None


def invalid_arguments(tool: str, error: ValidationError) -> InvalidInput:
    problems = [
        f"{'.'.join(str(p) for p in item['loc']) or '(arguments)'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    ]
    fields = sorted({str(item["loc"][0]) for item in error.errors() if item["loc"]})
    details: dict[str, Any] = {"fields": fields, "problems": problems[:20]}
    if len(fields) == 1:
        details["field"] = fields[0]
    return InvalidInput(
        f"The arguments of {tool} do not match its input schema: " + "; ".join(problems[:5]),
        next_step=f"Call {tool} again with the arguments its input schema lists (names, types, "
        "required ones); the MCP tool listing shows them.",
        **details,
    )


def unknown_tool(name: str) -> InvalidInput:
    return InvalidInput(
        f"There is no tool named {name[:100]!r}.",
        next_step="List the tools (tools/list) and call one of those names.",
        field="name",
    )
