"""The strings a resource's properties hold, where they are, and how they can name a resource.

Pointers are RFC 6901 JSON pointers into the resource's properties. A string that holds a JSON
document (an IAM policy given as text) is parsed and walked on: the pointer continues into the
parsed document as if it had been given as an object.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

# Top-level properties that label a resource rather than point at another one.
LABEL_PROPERTIES = frozenset({"Tags", "Description", "TagSpecifications"})
MIN_NAME_LENGTH = 3
MAX_JSON_TEXT = 1_000_000
_STRONG_ID = re.compile(
    r"^[a-z]{1,8}-[0-9a-f]{8,17}$"  # sg-..., vpc-..., subnet-..., igw-...
    r"|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"  # KMS key id, UUIDs
    r"|^(mrk-)[0-9a-f]{32}$"  # multi-region KMS key id
    r"|^A[A-Z]{3}[A-Z0-9]{16,}$"  # IAM unique ids: AROA..., AIDA..., ANPA...
    r"|^[a-z0-9-]+(\.[a-z0-9-]+){2,}$"  # host names: bucket.s3.amazonaws.com
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_GENERIC_TYPE_WORDS = frozenset({"group", "aws", "name", "id"})
_TYPE_ALIASES = {"parameter": {"param"}, "function": {"fn"}, "securitygroup": {"sg"}}


def escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def property_strings(properties: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (pointer, string) in ``properties``, descending into JSON documents held as
    strings; label properties (tags, descriptions) are skipped. Iterative: depth is free."""
    stack: list[tuple[str, Any]] = [
        (f"/{escape(k)}", v) for k, v in reversed(properties.items()) if k not in LABEL_PROPERTIES
    ]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, str):
            parsed = _json_document(value)
            if parsed is None:
                yield pointer, value
            else:
                stack.append((pointer, parsed))
        elif isinstance(value, dict):
            stack.extend((f"{pointer}/{escape(str(k))}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{pointer}/{i}", v) for i, v in reversed(list(enumerate(value))))


def _json_document(text: str) -> Any:
    head = text.lstrip()[:1]
    if head not in ("{", "[") or len(text) > MAX_JSON_TEXT:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None


def is_arn(value: str) -> bool:
    return value.startswith("arn:") and value.count(":") >= 5


def is_strong(value: str) -> bool:
    """Whether ``value`` names one thing wherever it appears: an ARN, a URL, an AWS id, a host
    name."""
    return is_arn(value) or "://" in value or bool(_STRONG_ID.match(value))


@functools.lru_cache(maxsize=1 << 16)
def lookups(value: str) -> tuple[str, ...]:
    """The values to look ``value`` up as, most specific first: itself, and for an ARN the
    ARNs it lies under (``arn:aws:s3:::b/*`` -> ``arn:aws:s3:::b``; ``...:log-group:n:*`` ->
    ``...:log-group:n``; ``...:table/t/index/i`` -> ``...:table/t``)."""
    found = [value]
    if not is_arn(value):
        return (value,)
    prefix, resource = value.split(":", 5)[:5], value.split(":", 5)[5]
    head = ":".join(prefix) + ":"
    if resource.endswith(":*"):
        resource = resource[:-2]
        found.append(head + resource)
    while "/" in resource:
        resource = resource.rsplit("/", 1)[0]
        if not resource:
            break
        found.append(head + resource)
    if resource.count(":") >= 2:  # function:name:qualifier -> function:name
        found.append(head + resource.rsplit(":", 1)[0])
    return tuple(found)


def key_forms(value: str) -> list[str]:
    """The forms a resource's own value is indexed under (a log group's ARN ends in ``:*``)."""
    if is_arn(value) and value.endswith(":*"):
        return [value, value[:-2]]
    return [value]


def words(segment: str) -> set[str]:
    found = {w.lower() for w in _WORDS.findall(segment)}
    found.add(re.sub(r"[^a-z0-9]", "", segment.lower()))
    return found


def hint_words(pointer: str) -> set[str]:
    """The words of the innermost named segment of ``pointer`` (``/Code/S3Bucket`` ->
    s3, bucket, s3bucket; ``/Environment/Variables/TABLE_NAME`` -> table, name, tablename)."""
    for segment in reversed(pointer.split("/")):
        if segment and not segment.isdigit():
            return words(unescape(segment))
    return set()


@functools.cache
def type_words(type_name: str) -> frozenset[str]:
    """Words that make a property name a hint for a type: AWS::Logs::LogGroup -> logs, log,
    loggroup. Generic words (group, name) are left out."""
    parts = type_name.split("::")[1:]
    found: set[str] = set()
    for part in parts:
        found |= words(part)
    for word in list(found):
        found |= _TYPE_ALIASES.get(word, set())
    return frozenset(found - _GENERIC_TYPE_WORDS)


def is_pattern(value: str) -> bool:
    """An ARN with a wildcard whose fixed part reaches into its last segment
    (``...:secret:db-creds-*``; not ``...:secret:*`` nor ``...:table/*``)."""
    if ("*" not in value and "?" not in value) or not is_arn(value):
        return False
    first = _first_wildcard(value)
    return first >= 0 and first > len(arn_parent(value[:first]))


def _first_wildcard(value: str) -> int:
    found = [i for i in (value.find("*"), value.find("?")) if i >= 0]
    return min(found) if found else -1


def arn_parent(value: str) -> str:
    """Everything up to the last ``:`` or ``/``: the ARNs of one kind share it
    (``arn:aws:secretsmanager:r:a:secret:``). For a pattern: that of its fixed part."""
    first = _first_wildcard(value)
    fixed = value if first < 0 else value[:first]
    return fixed[: max(fixed.rfind(":"), fixed.rfind("/")) + 1]


@functools.lru_cache(maxsize=4096)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts))
