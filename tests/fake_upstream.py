"""A stand-in for the upstream servers the setup commands download from (raw.githubusercontent.com, GitHub's API,
Helm repositories, an OCI registry), on 127.0.0.1: the tests of tools/crds.py and tools/chart_source.py fetch from
it, never from the internet."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeUpstream:
    """Path -> reply, or a function of the request's headers that gives it (anything else is a 404); ``seen``
    records each request's path and headers."""

    routes: dict[str, Reply | Callable[[dict[str, str]], Reply]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def add(self, path: str, body: bytes | str, status: int = 200, **headers: str) -> None:
        self.routes[path] = Reply(body.encode() if isinstance(body, str) else body, status, headers)


def _handler(fake: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

        def do_GET(self):
            headers = dict(self.headers.items())
            fake.seen.append((self.path, headers))
            route = fake.routes.get(self.path.split("?", 1)[0]) or Reply(b"not found", 404)
            reply = route(headers) if callable(route) else route
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    return Handler


@contextmanager
def serve(fake: FakeUpstream | None = None) -> Iterator[FakeUpstream]:
    fake = fake or FakeUpstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
