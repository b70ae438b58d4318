"""The offline AWS: moto plus a Cloud Control API endpoint on one port of 127.0.0.1.

A test double for AWS, shipped so a newcomer can try everything offline; never the production
path. ``with Sandbox() as sb: os.environ.update(sb.env())``.
"""

from ccstate.service.errors import ConfigError

# What the optional `sandbox` extra installs (moto[server] and what it brings).
_EXTRA_MODULES = frozenset({"moto", "werkzeug", "flask", "flask_cors", "responses", "xmltodict"})

try:
    from ccstate.sandbox.server import Sandbox
except ModuleNotFoundError as exc:
    if (exc.name or "").split(".")[0] not in _EXTRA_MODULES:
        raise
    raise ConfigError(
        f"The offline sandbox needs the optional 'sandbox' extra ({exc.name} is not installed).",
        next_step="Install it with: pip install 'ccstate[sandbox]' (or pipx inject ccstate "
        "'moto[server]'), then run the command again.",
    ) from exc

__all__ = ["Sandbox"]
