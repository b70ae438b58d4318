"""The sandbox's HTTP server: werkzeug's threaded server with moto's request handler, but
keeping connections open (HTTP/1.1 keep-alive).

werkzeug's development server answers every request with ``Connection: close``, so each call
costs the client a new TCP connection and the server a new thread. SDK clients keep a pool of
connections and reuse them; this handler lets them, which is what real AWS endpoints do.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import socket
import threading
from typing import Any

from ccstate.service.errors import ConfigError
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import ThreadedWSGIServer

log = logging.getLogger(__name__)

Header = tuple[str, str]
_NO_BODY_STATUSES = frozenset({204, 304})
_IDLE_SECONDS = 120  # an idle kept-alive connection is closed after this long


def make_keepalive_server(host: str, port: int, app: Any) -> KeepAliveServer:
    """A threaded WSGI server on ``host:port`` (0: any free port) that keeps connections."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return KeepAliveServer(host, port, app)


def port_unavailable(host: str, port: int, exc: OSError) -> ConfigError:
    reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
    return ConfigError(
        f"The sandbox cannot listen on {host}:{port}: the port {reason}.",
        next_step="Choose another port with --port N, or --port 0 for any free one "
        "(the sandbox prints the endpoint it took).",
    )


class KeepAliveServer(ThreadedWSGIServer):
    """One thread per connection, as werkzeug's; closing the server also closes the
    connections clients keep open, so a stopped sandbox stops answering."""

    def __init__(self, host: str, port: int, app: Any) -> None:
        # Set before binding: a failed bind calls server_close() from the base __init__.
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(host, port, app, handler=KeepAliveRequestHandler)

    def server_bind(self) -> None:
        # werkzeug prints its own message and calls sys.exit(1) on an OSError here; a
        # ConfigError reaches the CLI, which reports it with the next step and exit code 2.
        try:
            super().server_bind()
        except OSError as exc:
            host, port = self.server_address[:2]
            raise port_unavailable(str(host), int(port), exc) from exc

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class KeepAliveRequestHandler(MotoRequestHandler):
    """Runs the WSGI app with the request body read in full and the response buffered, then
    writes the response in one piece with a Content-Length, so the connection can carry the
    next request. Chunked request bodies fall back to werkzeug's close-after-response path."""

    protocol_version = "HTTP/1.1"
    timeout = _IDLE_SECONDS
    disable_nagle_algorithm = True

    def run_wsgi(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            super().run_wsgi()
            return
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(self._request_body(environ))
        try:
            status, headers, body = _call(self.server.app, environ)
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            status, headers = "500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]
            body = b"Internal Server Error"
            self.close_connection = True
        self._send(status, headers, body, head=self.command == "HEAD")

    def _request_body(self, environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: str, headers: list[Header], body: bytes, *, head: bool) -> None:
        code = int(status.split(None, 1)[0])
        names = {name.lower() for name, _ in headers}
        lines = [
            f"HTTP/1.1 {status}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() != "connection"]
        sends_body = not head and code >= 200 and code not in _NO_BODY_STATUSES
        if sends_body and "content-length" not in names:
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection or _asks_to_close(headers):
            self.close_connection = True
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head_bytes + body if sends_body else head_bytes)
        if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
            self.log_request(code, len(body))


def _asks_to_close(headers: list[tuple[str, str]]) -> bool:
    return any(n.lower() == "connection" and v.lower() == "close" for n, v in headers)


def _call(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run a WSGI app to completion: its status, headers and whole body."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return written.append

    iterable = app(environ, start_response)
    try:
        chunks = [bytes(chunk) for chunk in iterable]
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    status, headers = started
    return status, list(headers), b"".join(written + chunks)
