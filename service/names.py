"""Validation of names that reach keys, paths and lock ids: workspaces and resource identifiers."""

from __future__ import annotations

import re
import unicodedata

from ccstate.service.errors import InvalidInput

_WORKSPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_IDENTIFIER = 1024
RESERVED_SUFFIX = ".json"
# Unicode format (Cf: bidi marks and overrides, zero-width joiners) and other invisible chars.
INVISIBLE = frozenset({"Cf", "Cc", "Co", "Cs", "Zl", "Zp"})


def validate_workspace(name: str) -> str:
    """Workspaces become directory and key prefixes: letters, digits, '_', '.', '-' only.
    Names ending in '.json' are reserved for files beside the workspaces in a backend root
    (the default workspace's state.json export, config.json)."""
    if not isinstance(name, str) or not _WORKSPACE.fullmatch(name) or ".." in name:
        raise InvalidInput(
            f"Invalid workspace name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, without '..', '/' or NUL.",
            next_step="Pass a plain name such as 'default' or 'prod' to ${workspace_flag}.",
        )
    if name.lower().endswith(RESERVED_SUFFIX):
        raise InvalidInput(
            f"Invalid workspace name {name!r}: names ending in '{RESERVED_SUFFIX}' are reserved "
            "for files in the backend root, such as the state.json export.",
            next_step=f"Pass a name without the '{RESERVED_SUFFIX}' ending, e.g. "
            f"'{name[: -len(RESERVED_SUFFIX)] or 'prod'}'.",
        )
    return name


def validate_identifier(identifier: str) -> str:
    """Resource identifiers are AWS's primary identifiers (bucket names, queue URLs, ARNs, log
    group names such as '/aws/lambda/x'), so '/' is legal; they are never used as file paths.
    Control characters, NUL and '..' path segments are refused all the same."""
    problem = _identifier_problem(identifier)
    if problem:
        raise InvalidInput(
            f"Invalid resource identifier {identifier!r}: {problem}.",
            next_step="Pass the resource's primary identifier exactly as AWS reports it "
            "(see ${list_managed}).",
        )
    return identifier


def _identifier_problem(identifier: object) -> str:
    if not isinstance(identifier, str) or not identifier:
        return "it is empty"
    if len(identifier) > MAX_IDENTIFIER:
        return f"it is longer than {MAX_IDENTIFIER} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in identifier):
        return "it contains NUL or control characters"
    if any(unicodedata.category(ch) in INVISIBLE for ch in identifier):
        return "it contains invisible or bidirectional formatting characters (such as U+200F)"
    if ".." in identifier.replace("://", "/").split("/"):
        return "it contains a '..' path segment"
    if identifier.strip() != identifier:
        return "it has leading or trailing whitespace"
    return ""
