"""ccstate's domain: the state model, the transaction-log store, and the use cases."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``__version__`` is looked up on first use: importlib.metadata costs ~20 ms of start-up,
    # which every CLI command and the MCP server would pay (docs/performance.md).
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("ccstate")
    except PackageNotFoundError:  # running from a source tree without installation
        value = "0.0.0+local"
    globals()["__version__"] = value
    return value
