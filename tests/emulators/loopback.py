"""A stateful REST API on 127.0.0.1 for the clouds no emulator covers (Vertex AI, Azure ML).

A test builds one :class:`LoopbackAPI`, registers routes (method + path regex) whose handlers
keep state (create, then get, then long-running operations that finish), and points the code
under test at :attr:`LoopbackAPI.url` through the profile's ``api_endpoint`` setting: the real
HTTP client, retry and auth code runs, over a real socket.

Every request is logged (:attr:`calls`). A handler refuses a body by raising :class:`Invalid`:
the client gets a 400 with the message, and the violation is kept in :attr:`violations`, which a
test asserts empty at the end (so a refused request fails the test even when the code under test
swallows the 400). A request no route matches is a violation too.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable


class Invalid(Exception):
    """The request does not follow the API description: answered 400 and recorded."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    match: re.Match[str] | None = None
    groups: dict[str, str] = field(default_factory=dict)


class LoopbackAPI:
    """Routes + state + request log behind a ``ThreadingHTTPServer`` on an ephemeral port."""

    def __init__(self, name: str = "api") -> None:
        self.name = name
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Request], tuple[int, Any]]]] = []
        self.calls: list[Request] = []
        self.violations: list[str] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, pattern: str) -> Callable[[Callable[[Request], tuple[int, Any]]], Any]:
        """Register ``handler(request) -> (status, body)`` for ``method`` and a full-match ``pattern``."""

        def register(handler: Callable[[Request], tuple[int, Any]]) -> Any:
            self.routes.append((method.upper(), re.compile(pattern), handler))
            return handler

        return register

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the API first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def requests(self, method: str | None = None, contains: str = "") -> list[Request]:
        """The logged requests, filtered by method and a substring of the path."""
        return [c for c in self.calls if (method is None or c.method == method) and contains in c.path]

    def dispatch(self, req: Request) -> tuple[int, Any]:
        with self.lock:
            self.calls.append(req)
            for method, pattern, handler in self.routes:
                match = pattern.fullmatch(req.path)
                if method == req.method and match:
                    req.match, req.groups = match, match.groupdict()
                    try:
                        return handler(req)
                    except Invalid as err:
                        self.violations.append(f"{req.method} {req.path}: {err}")
                        return 400, {"error": {"code": "InvalidArgument", "message": str(err)}}
            self.violations.append(f"{req.method} {req.path}: no such route in the {self.name} API")
            return 404, {"error": {"code": "NotFound", "message": f"no route for {req.method} {req.path}"}}

    def start(self) -> LoopbackAPI:
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                req = Request(self.command, parts.path, query, dict(self.headers.items()), body)
                status, answer = api.dispatch(req)
                data = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LoopbackAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
