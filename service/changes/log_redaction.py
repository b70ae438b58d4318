"""Secrets never reach the log: a filter on every handler scrubs each record with the same
detection as the state (``changes.secrets``). The detection is imported with the first record,
so a command that logs nothing (``state list``) does not pay for it at start-up; the filter is
on the handlers from the start all the same."""

from __future__ import annotations

import logging
import secrets

_LOG_SALT = secrets.token_bytes(32)


def log_mask(secret: str) -> str:
    """What a secret becomes in a log line: its fingerprint under a per-process key."""
    from ccstate.service.changes.redaction import MARKER, PREFIX, fingerprint

    return f"[{MARKER} {fingerprint(secret, _LOG_SALT)[: len(PREFIX) + 16]}]"


class RedactingLogFilter(logging.Filter):
    """Put on a handler: every record it writes (message, arguments, traceback) is formatted
    first and passes the same secret detection as the state (``changes.secrets``).

    This is how request and response bodies that botocore logs at DEBUG (``-vv``) lose their
    SecretString, passwords and keys before they reach stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ccstate.service.changes import secrets as secrets_detector

        try:
            message = record.getMessage()
        except Exception:  # a broken format string: show it raw, but still scrubbed
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = secrets_detector.scrub_text(message, log_mask), None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = secrets_detector.scrub_text(text, log_mask)
        if record.stack_info:
            record.stack_info = secrets_detector.scrub_text(record.stack_info, log_mask)
        return True


def redact_log_handlers(logger: logging.Logger | None = None) -> None:
    """Add a ``RedactingLogFilter`` to each handler of ``logger`` (the root by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingLogFilter) for f in handler.filters):
            handler.addFilter(RedactingLogFilter())
