"""ccstate's domain: the state model, the transaction-log store, and the use cases."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ccstate")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
