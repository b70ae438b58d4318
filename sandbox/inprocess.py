"""Handler calls to moto inside the sandbox's process: a botocore ``before-send`` hook.

A handler's boto3 call is still a real service call: botocore serializes it, moto's response
class for the service parses it, runs it against moto's backend and serializes the answer,
and botocore parses that. What the hook leaves out is what only a socket needs: signing
(moto reads just the access key and region of the credential scope, which the hook writes),
the HTTP round trip, and Flask's request context around moto's view. Requests moto's
``AtomicConditionalWrites`` must serialize, and anything the shortcut cannot route, go
through the whole WSGI application instead.

A handler may also read moto's backend objects directly (``InProcessMoto.backend``) for reads
that matter to a drift scan, when nothing observes moto's requests: then skipping the call
changes nothing but its cost.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from ccstate.sandbox.moto_server import AtomicConditionalWrites
from moto import settings
from moto.core.base_backend import BackendDict
from moto.core.request import (
    PRESERVED_HEADER_NAMES_ENVIRON_KEY,
    environ_key_for_header,
    should_preserve_original_header_name,
)
from moto.core.responses import BaseResponse
from moto.moto_api import recorder
from werkzeug.exceptions import HTTPException
from werkzeug.test import run_wsgi_app

Response = tuple[int, dict[str, str], bytes]


class RawBody(io.BytesIO):
    """A body botocore can ``stream()``, as urllib3's responses can."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


class InProcessMoto:
    """Answers handler calls from ``moto_app`` (what ``sandbox.moto_server.moto_app`` built)."""

    def __init__(self, moto_app: Any) -> None:
        self._wsgi = moto_app
        self._atomic = moto_app if isinstance(moto_app, AtomicConditionalWrites) else None
        dispatcher = moto_app.app if self._atomic is not None else moto_app
        self._dispatcher = dispatcher if hasattr(dispatcher, "get_application") else None

    def hook(self, *, service: str, region: str, access_key: str) -> Callable[..., AWSResponse]:
        """A ``before-send`` handler for an unsigned client of ``service`` (its signing name)."""
        authorization = _authorization(service, region, access_key)

        def send(request: Any, **_: Any) -> AWSResponse:
            status, headers, body = self.call(wsgi_environ(request, authorization))
            return AWSResponse(request.url, status, headers, RawBody(body))

        return send

    def backend(self, backends: BackendDict[Any], *, region: str, access_key: str) -> Any | None:
        """The backend in ``backends`` (e.g. moto's ``sqs_backends``) that a call from
        ``access_key`` in ``region`` reaches, marking the key used as moto's call would; None
        when a call must go through moto's request path because something observes it: the
        request recorder, or IAM authorization (which also counts requests until it starts)."""
        if recorder._user_enabled or not math.isinf(settings.INITIAL_NO_AUTH_ACTION_COUNT):
            return None
        service = backends.service_name
        key = _moto_access_key(_authorization(service, region, access_key))
        return backends[_visited_account(key, service, region)][region]

    def call(self, environ: dict[str, Any]) -> Response:
        if self._dispatcher is None or (self._atomic and self._atomic.needs_lock(environ)):
            return self._through_wsgi(environ)
        app = self._dispatcher.get_application(environ)
        try:
            endpoint, _ = app.url_map.bind_to_environ(environ).match()
        except HTTPException:
            return self._through_wsgi(environ)
        callback = getattr(app.view_functions.get(endpoint), "callback", None)
        if callback is None:
            return self._through_wsgi(environ)
        request = app.request_class(environ)
        recorder._record_request(request)  # moto's request recorder, when a user turned it on
        try:
            result = callback(request, request.raw_url, dict(request.headers))
        except HTTPException as exc:
            return _response(exc.code or 500, dict(exc.get_headers()), exc.get_body())
        except ClientError as exc:  # as moto's Flask view answers it
            result = 400, {}, exc.response["Error"]["Message"]
        if len(result) == 3:
            status, headers, content = result
        else:
            status, headers, content = 200, {}, result
        return _response(int(str(status).split()[0]), headers, content)

    def _through_wsgi(self, environ: dict[str, Any]) -> Response:
        chunks, status, headers = run_wsgi_app(self._wsgi, environ, buffered=True)
        return int(status.split()[0]), dict(headers), b"".join(chunks)


def _authorization(service: str, region: str, access_key: str) -> str:
    """The Authorization header of an in-process call: moto reads only its credential scope."""
    return (
        f"AWS4-HMAC-SHA256 Credential={access_key}/20250101/{region}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=sandbox"
    )


def _moto_access_key(authorization: str) -> str:
    """The access key moto finds in an Authorization header (``BaseResponse.get_access_key``)."""
    found = BaseResponse.access_key_regex.search(authorization)
    return found.group(1) if found else "AKIAEXAMPLE"


def _visited_account(access_key: str, service: str, region: str) -> str:
    """The account moto serves a call from ``access_key`` in, marking the key used, as moto's
    ``BaseResponse.setup_class`` does (and, as there, moto.iam is imported only when needed:
    it is large)."""
    from moto.iam.models import get_account_id_from, mark_account_as_visited

    if "MOTO_ACCOUNT_ID" in os.environ:
        account = os.environ["MOTO_ACCOUNT_ID"]
    else:
        account = get_account_id_from(access_key)
    mark_account_as_visited(
        account_id=account, access_key=access_key, service=service, region=region
    )
    return account


def _response(status: int, headers: dict[str, Any], content: Any) -> Response:
    """The status, headers and body as Flask's ``Response`` would have sent them."""
    if isinstance(content, str):
        body = content.encode()
    elif content is None:
        body = b""
    elif isinstance(content, bytes | bytearray):
        body = bytes(content)
    else:
        body = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in content)
    out = {str(k): str(v) for k, v in headers.items()}
    lower = {k.lower() for k in out}
    if "content-type" not in lower:
        out["Content-Type"] = "text/html; charset=utf-8"
    if "content-length" not in lower:
        out["Content-Length"] = str(len(body))
    return status, out, body


def wsgi_environ(request: Any, authorization: str) -> dict[str, Any]:
    """The WSGI environ the sandbox's server would build for a botocore request."""
    url = urlsplit(request.url)
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    body = body or b""
    raw_uri = url.path + (f"?{url.query}" if url.query else "")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": _latin1(unquote(url.path)),
        "QUERY_STRING": _latin1(url.query),
        "REQUEST_URI": raw_uri,
        "RAW_URI": raw_uri,
        "SERVER_NAME": url.hostname or "127.0.0.1",
        "SERVER_PORT": str(url.port or 80),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": url.netloc,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    preserved: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in request.headers.items():
        text = value.decode() if isinstance(value, bytes) else str(value)
        key = environ_key_for_header(name)
        if should_preserve_original_header_name(name):
            preserved.setdefault(key, name)
        environ[key] = f"{environ[key]},{text}" if key in seen else text
        seen.add(key)
    environ["HTTP_AUTHORIZATION"] = authorization
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = preserved
    return environ


def _latin1(text: str) -> str:
    """PEP 3333: environ strings carry the UTF-8 bytes as latin-1 characters."""
    return text.encode().decode("latin-1")
