"""Which values are secrets, judged by the value itself and by the name it is stored under.

The detectors are Yelp's ``detect-secrets`` (its regex detectors for known key formats, URL
credentials and private keys, its Shannon-entropy measures, its keyword detector for free text),
plus two rules of ccstate's own that the library has no detector for:

- a *password-shaped* value: 8-128 characters without whitespace that mix lower case, upper
  case, digits and a symbol such as ``@`` or ``!`` (``Hunter2-P@ssw0rd``);
- a *secret name*: the key a value is stored under (``Password``, ``DB_PASS``, ``PIN``...), or
  the ``Name``/``Key`` beside a ``Value`` (SSM parameters, ECS environments, tags).

False positives are bounded on purpose (docs/security.md): identifiers, ARNs, URLs without
credentials, ccstate's own ``sha256:``/``hmac-sha256:`` hashes and values under id-like keys
(``...Id``, ``...Arn``, ``...Name``, ``...Url``, ``...Sha256``) are never judged by entropy or
shape; only a known key format or credentials in a URL redact them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

__all__ = ["looks_secret_key", "looks_secret_value", "scrub_text", "secret_substrings"]

_SECRET_KEY = re.compile(
    r"password|passwd|passphrase|secret|token|private[_-]?key|credential|api[_-]?key"
    r"|access[_-]?key|auth[_-]?key|connection[_-]?string|signing[_-]?key|authorization"
    r"|(?:^|[_-])(?:pin|pwd|pass|passcode)(?:$|[_-])",
    re.IGNORECASE,
)
# Keys that name a secret but hold something else: its ARN, id, name, length, policy...
_NOT_A_SECRET_KEY = re.compile(
    r"(arn|arns|id|ids|name|names|length|type|types|validity|units|enabled|version|versionid"
    r"|policy|policies|configuration|config|location|path|ttl|source|kmskeyid|rotation"
    r"|duration|count|header|headers|exclude\w*|require\w*)$",
    re.IGNORECASE,
)
# Keys whose values are identifiers or digests: never judged by entropy or shape.
_ID_LIKE_KEY = re.compile(
    r"(id|ids|arn|arns|name|names|url|urls|uri|endpoint|address|sha256|sha1|md5|hash|digest"
    r"|etag|checksum|fingerprint|thumbprint|thumbprintlist|version|versionid|region|zone"
    r"|zones|type|runtime|handler|identifier|key|prefix|suffix|domain|hostname)$",
    re.IGNORECASE,
)
# In free text, a value assigned to one of these names is an identifier or a digest.
_ID_NAME = re.compile(
    r"(id|ids|identifier|arn|sha256|sha1|md5|hash|digest|etag|checksum|fingerprint)$",
    re.IGNORECASE,
)
_OWN_DIGEST = re.compile(r"^(?:hmac-)?sha256:[0-9a-f]{16,}$")
_BARE_ACCESS_KEY_ID = re.compile(r"^(?:AKIA|ASIA|AROA|AIDA|ANPA|AGPA)[0-9A-Z]{16}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PASSWORD_SYMBOL = re.compile(r"[!@#$%^&*?~]")
_TOKEN_SPLIT = re.compile(r"""[\s"'`\\,;{}\[\]()<>|&]+""")
_WORD_SEPARATOR = re.compile(r"[-_./]")
_WORD = re.compile(r"(?=.{4})[A-Z]?[a-z]+(?:[A-Z][a-z]+)*")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][\w.-]{0,63})[:=]$")
MIN_ENTROPY_LENGTH = 20
_NOT_VALUES = frozenset({"null", "None", "true", "false", "True", "False", ""})


@dataclass(frozen=True)
class _Plugins:
    base64: Any
    hex: Any
    keywords: Any
    regex_detectors: list[Any]
    is_potential_uuid: Callable[[str], bool]
    is_sequential_string: Callable[[str], bool]


@cache
def _plugins() -> _Plugins:
    """detect-secrets' detectors, built on first use: importing the library takes about 0.1 s,
    which a process that never judges a value (``state list``, the MCP server until a tool
    writes) should not pay at start-up (docs/performance.md)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
    )
    from detect_secrets.plugins.ip_public import IPPublicDetector
    from detect_secrets.plugins.keyword import KeywordDetector

    skipped = (IPPublicDetector,)  # public IPs and CIDRs are configuration, not secrets
    return _Plugins(
        base64=Base64HighEntropyString(),
        hex=HexHighEntropyString(),
        keywords=KeywordDetector(),
        regex_detectors=[
            cls()
            for cls in get_mapping_from_secret_type_to_class().values()
            if issubclass(cls, RegexBasedDetector) and not issubclass(cls, skipped)
        ],
        is_potential_uuid=is_potential_uuid,
        is_sequential_string=is_sequential_string,
    )


@lru_cache(maxsize=4096)  # asked of every key of every redaction: the same few names
def looks_secret_key(key: str) -> bool:
    """A property, variable or parameter name that says its value is a secret."""
    return bool(_SECRET_KEY.search(key)) and not _NOT_A_SECRET_KEY.search(key)


def looks_secret_value(value: str, key: str = "") -> bool:
    """Whether ``value`` (stored under ``key``) holds a secret anywhere in it."""
    if len(value) > 1024:
        return bool(secret_substrings(value, key))
    return _short_value_is_secret(value, key)


@lru_cache(maxsize=16_384)
def _short_value_is_secret(value: str, key: str) -> bool:
    return bool(secret_substrings(value, key))


def secret_substrings(text: str, key: str = "") -> list[str]:
    """The secrets found in ``text``: whole tokens, or the credentials inside a URL."""
    found: list[str] = []
    judge_shape = not _ID_LIKE_KEY.search(key)
    for name, token in _tokens(text):
        named_secret = bool(name) and looks_secret_key(name) and token not in _NOT_VALUES
        # ``lock_id=3f2a...`` in free text names an identifier, as a key ending in Id does.
        judge = judge_shape and not (name and _ID_NAME.search(name))
        if named_secret or (judge and _is_random_or_password(token)):
            found.append(token)
    found += _format_secrets(text)
    found += _keyword_secrets(text)
    return sorted(set(found), key=len, reverse=True)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    """Whitespace, quote, bracket and separator delimited words, each with the name it is
    assigned to in the text (``name: value``, ``name=value``), if any."""
    name = last = ""
    for word in _TOKEN_SPLIT.split(text):
        if word in (":", "=", ""):
            name = last if word else name
            continue
        assigned = _ASSIGNMENT.fullmatch(word)
        if assigned:
            name, last = assigned.group(1), ""
            continue
        head, sep, tail = word.partition("=")
        if sep and tail and not tail.startswith("="):
            yield head, tail
        else:
            yield name, word
        name, last = "", word


def _format_secrets(text: str) -> list[str]:
    """What detect-secrets' format detectors (keys, tokens, URL credentials) find in ``text``.
    An access key id alone names a key (only the secret key is secret): it is left alone."""
    hits = [
        _secret_part(match)
        for detector in _plugins().regex_detectors
        for regex in detector.denylist
        for match in regex.finditer(text)
    ]
    return [hit for hit in hits if not _BARE_ACCESS_KEY_ID.fullmatch(hit)]


def _secret_part(match: re.Match[str]) -> str:
    """The secret a detector's match captured (a URL's password), else the whole match."""
    groups = [g for g in match.groups() if g]
    longest = max(groups, key=len) if groups else ""
    return longest if len(longest) >= 4 else match.group(0)


def _is_random_or_password(token: str) -> bool:
    if _OWN_DIGEST.fullmatch(token) or token.startswith("arn:") or "://" in token:
        return False
    return _is_high_entropy(token) or _is_password_shaped(token)


def _is_high_entropy(token: str) -> bool:
    plugins = _plugins()
    if len(token) < MIN_ENTROPY_LENGTH or plugins.is_potential_uuid(token):
        return False
    if plugins.is_sequential_string(token) or _made_of_words(token):
        return False
    for plugin in (plugins.hex, plugins.base64):
        if all(ch in plugin.charset for ch in token):
            return plugin.calculate_shannon_entropy(token) > plugin.entropy_limit
    return False


def _made_of_words(token: str) -> bool:
    """``MyStack-MyBucket-1A2B3C4D``: generated names join words and a random suffix."""
    return len([p for p in _WORD_SEPARATOR.split(token) if _WORD.fullmatch(p)]) >= 2


def _is_password_shaped(token: str) -> bool:
    if not 8 <= len(token) <= 128 or _EMAIL.fullmatch(token) or "${" in token:
        return False
    return (
        bool(_PASSWORD_SYMBOL.search(token))
        and any(ch.islower() for ch in token)
        and any(ch.isupper() for ch in token)
        and any(ch.isdigit() for ch in token)
    )


def _keyword_secrets(text: str) -> list[str]:
    """``password = "..."`` and its kin in free text (scripts, logs), by detect-secrets."""
    if not _SECRET_KEY.search(text):
        return []
    found = []
    for line in text.splitlines() or [text]:
        if _SECRET_KEY.search(line):
            hits = _plugins().keywords.analyze_line(filename="text.txt", line=line, line_number=0)
            found += [str(h.secret_value) for h in hits if h.secret_value]
    return found


_PEM_BLOCK = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|$)", re.S
)


def scrub_text(text: str, mask: Callable[[str], str], *, formats_only: bool = False) -> str:
    """``text`` with every secret found in it replaced by ``mask(secret)``: private key blocks
    whole, other secrets where they stand as a word (a URL's password, a token, a value).

    ``formats_only`` looks for known formats alone (keys, tokens, URL credentials), not for
    named, random or password-shaped values: for messages that name hashes and identifiers."""
    text = _PEM_BLOCK.sub(lambda m: mask(m.group(0)), text)
    found = _format_secrets(text) if formats_only else secret_substrings(text)
    for secret in sorted(set(found), key=len, reverse=True):
        pattern = r"(?<![A-Za-z0-9])" + re.escape(secret) + r"(?![A-Za-z0-9])"
        text = re.sub(pattern, lambda _m, s=secret: mask(s), text)
    return text
