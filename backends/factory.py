"""From a backend URL to a Backend: an object store plus a lock manager.

Accepted forms:
    file:///absolute/path   file://~/path   /a/plain/path   ./relative/path      -> local directory
                            (client-side encrypted when the ``kms_key`` setting is set)
    s3://BUCKET/PREFIX?table=T&kms_key=K&region=R&encrypt=client                  -> S3 + DynamoDB
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ccstate.backends.base import Backend, BackendSpec
from ccstate.backends.config import Settings, load_settings
from ccstate.backends.local_url import local_backend_path
from ccstate.service.changes.redaction import looks_secret_value
from ccstate.service.changes.secrets import scrub_text
from ccstate.service.errors import ConfigError
from ccstate.service.state.store import StateStore

__all__ = ["ACCEPTED_FORMS", "BackendSpec", "open_backend", "parse_backend_url", "redact_url"]

ACCEPTED_FORMS = (
    "file:///absolute/path, file://~/path, a plain directory path, or "
    "s3://BUCKET/PREFIX?table=TABLE&kms_key=KEY&region=REGION&encrypt=client"
)
S3_OPTIONS = {
    "table": "the DynamoDB lock table",
    "kms_key": "KMS key id, ARN or alias for SSE-KMS and client-side encryption",
    "region": "AWS region of the bucket and table",
    "encrypt": "'client' adds client-side envelope encryption; 'sse' (default) is SSE-KMS only",
    "endpoint_url": "a custom endpoint (LocalStack, the sandbox)",
}
_ENCRYPT_VALUES = ("sse", "client")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SENSITIVE = re.compile(r"secret|token|passw|credential|signature|session|auth|access_key", re.I)


async def open_backend(url: str | None = None, *, settings: Settings | None = None) -> Backend:
    """Open the backend ``url`` (default: the settings' backend) for ``settings.workspace``."""
    settings = settings or load_settings()
    spec = parse_backend_url(url or settings.backend_url, settings=settings)
    if spec.scheme == "file":
        from ccstate.backends.local import encrypt_local_backend, open_local_backend

        backend = open_local_backend(spec, settings)
        if settings.kms_key:
            return await encrypt_local_backend(backend, settings.kms_key, settings.region)
        return backend
    from ccstate.backends.s3 import open_s3_backend

    return await open_s3_backend(spec, settings)


def parse_backend_url(url: str, *, settings: Settings | None = None) -> BackendSpec:
    """Parse and check a backend URL; ``ConfigError`` names what is wrong and the accepted forms."""
    if not isinstance(url, str):
        raise _bad_url(url, "it is empty")
    try:
        root = local_backend_path(url)
    except ValueError as exc:
        raise _bad_url(url, str(exc)) from None
    if root is not None:
        return BackendSpec(scheme="file", url=root.as_uri(), path=str(root))
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() == "s3":
        return _s3_spec(url, settings or Settings())
    raise _bad_url(url, f"the scheme '{parts.scheme}' is not supported")


def _s3_spec(url: str, settings: Settings) -> BackendSpec:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise _bad_url(url, "credentials do not belong in the URL; use the AWS credential chain")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise _bad_url(
            url,
            f"'{bucket}' is not a valid S3 bucket name "
            "(3-63 lowercase letters, digits, '.' and '-')",
        )
    if parts.fragment:
        raise _bad_url(url, "S3 URLs take no '#fragment'")
    prefix = _s3_prefix(url, parts.path.strip("/") or (settings.prefix or "").strip("/"))
    options = _s3_options(url, parts.query)
    fallbacks = {
        "table": settings.dynamodb_table,
        "kms_key": settings.kms_key,
        "region": settings.region,
    }
    for name, value in fallbacks.items():
        if value and name not in options:
            options[name] = value
    query = urlencode(options, safe=":/")
    clean = urlunsplit(("s3", bucket, f"/{prefix}" if prefix else "", query, ""))
    return BackendSpec(
        scheme="s3", url=redact_url(clean), bucket=bucket, prefix=prefix, options=options
    )


def _s3_prefix(url: str, prefix: str) -> str:
    for segment in prefix.split("/") if prefix else []:
        if segment in ("", ".", "..") or "\\" in segment or any(ord(c) < 32 for c in segment):
            raise _bad_url(
                url, f"the prefix '{prefix}' has an empty, '.', '..' or control-character segment"
            )
    return prefix


def _s3_options(url: str, query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _bad_url(url, "the '?options' part is malformed") from None
    for name, value in pairs:
        if name not in S3_OPTIONS:
            raise _bad_url(
                url, f"unknown option '{name}' (accepted: {', '.join(sorted(S3_OPTIONS))})"
            )
        if name in options:
            raise _bad_url(url, f"option '{name}' is given twice")
        if not value:
            raise _bad_url(url, f"option '{name}' has no value")
        options[name] = value
    if options.get("encrypt", "sse") not in _ENCRYPT_VALUES:
        raise _bad_url(url, f"encrypt must be one of {', '.join(_ENCRYPT_VALUES)}")
    return options


def build_store(backend: Backend, settings: Settings) -> StateStore:
    """The workspace's StateStore on ``backend``; local backends also keep the readable
    state.json export (written on a debounce, and flushed when the backend closes) and the
    head file. The CLI and the MCP server both build their store here."""
    from ccstate.backends.export import (
        exported_head,
        head_recorder,
        previous_export,
        state_json_exporter,
    )

    path = backend.export_path
    store = backend.state_store(
        settings.workspace,
        snapshot_every=settings.snapshot_every,
        exporter=state_json_exporter(path) if path else None,
        head_witness=exported_head(path) if path else None,
        head_recorder=head_recorder(path) if path else None,
        export_source=previous_export(path) if path else None,
    )
    if path:
        backend._closers.append(store.close)  # closers run last-added first: before the files
    return store


def redact_url(url: str) -> str:
    """The URL with any password and secret-looking query values replaced by '***'."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, _shown_option(k, v)) for k, v in pairs], safe="*:/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _shown_option(name: str, value: str) -> str:
    """Known, non-secret options are shown; anything else in a query might be a credential."""
    if name not in S3_OPTIONS or _SENSITIVE.search(name) or looks_secret_value(value, name):
        return "***"
    return value


def _mask_credentials(url: str, text: str) -> str:
    """``text`` (a message about ``url``) without the URL's password or secret option values."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    hidden = [password, unquote(password)] if password else []
    hidden += [v for k, v in parse_qsl(parts.query) if _shown_option(k, v) == "***" and v]
    for secret in sorted(set(hidden), key=len, reverse=True):
        text = text.replace(secret, "***")
    return scrub_text(text, lambda _s: "***", formats_only=True)


def _bad_url(url: object, problem: str) -> ConfigError:
    shown = redact_url(url) if isinstance(url, str) else repr(url)
    if isinstance(url, str):
        problem = _mask_credentials(url, problem)
    return ConfigError(
        f"Invalid backend URL {shown!r}: {problem}.",
        next_step=f"Use one of: {ACCEPTED_FORMS} (option --backend, CCSTATE_BACKEND or "
        "'backend' in config.json).",
        url=shown,
    )
