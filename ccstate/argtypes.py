"""argparse ``type=`` converters shared by every command (and by ``serve``'s options).

A leaf module: it imports nothing heavier than the settings parser, so importing it keeps the
"only the named command's module is imported" rule cheap.
"""

from __future__ import annotations

import argparse

from ccstate.backends.config_layers import parse_duration


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def serial_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a serial number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("serials start at 0")
    return value


def duration(text: str) -> float:
    """Seconds from '90', '30s', '15m', '1h', '250ms'; more than zero."""
    try:
        seconds = float(parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than zero")
    return seconds
