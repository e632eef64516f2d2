"""A small HTTP/1.1 server and client on asyncio, and the loopback rule every socket of the stand-in follows.

SGLang serves with uvicorn (FastAPI); the stand-in needs what its clients see of that: keep-alive connections
(the gateway and bench_serving pool them), JSON bodies, streamed responses in chunked transfer encoding (SSE),
FastAPI's ``{"detail": "Not Found"}`` / ``Method Not Allowed`` answers. The standard library has no asyncio
HTTP server, and the stand-in must not need packages the project does not pin, so this is written out here.

Loopback only: the stand-in runs on developer machines and CI as well as in the simulation's network namespace,
so every address it binds or connects to must be in 127.0.0.0/8 (or ::1). A wildcard ``--host`` (``0.0.0.0``,
as the platform renders it) binds the pod's own address given in ``SGLANG_STANDIN_POD_IP`` (the node agent sets
it; inside the simulation every pod IP is a loopback address), else 127.0.0.1. A peer name that resolves to no
loopback address is treated as unreachable, as it would be inside the namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

WILDCARDS = {"0.0.0.0", "::", "", "[::]"}
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 256 * 1024 * 1024


class NotLoopbackError(OSError):
    pass


def is_loopback(address: str) -> bool:
    """127.0.0.0/8 and ::1, or an address assigned to the ``lo`` interface: in the sandbox a pod's IP is a /32 on
    ``lo`` (the API server refuses 127.0.0.0/8 in Endpoints), and there ``lo`` is the namespace's only interface."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return ip.is_loopback or str(ip) in _lo_addresses()


def _lo_addresses() -> set[str]:
    # Read at every call: the node agent adds a pod's address when the pod starts.
    try:
        out = subprocess.run(["ip", "-j", "addr", "show", "dev", "lo"], capture_output=True, text=True, timeout=5)
        return {a["local"] for link in json.loads(out.stdout or "[]") for a in link.get("addr_info", [])}
    except (OSError, ValueError, subprocess.SubprocessError):
        return set()


def bind_address(host: str | None) -> str:
    """The address to listen on for ``--host``: a wildcard becomes the pod's IP; anything else must be loopback."""
    if host is None or host in WILDCARDS:
        pod_ip = os.environ.get("SGLANG_STANDIN_POD_IP", "").strip()
        host = pod_ip or "127.0.0.1"
    if host == "localhost":
        return "127.0.0.1"
    if not is_loopback(host):
        raise NotLoopbackError(
            f"stand-in: refusing to bind {host}: it binds loopback addresses only (127.0.0.0/8, ::1); "
            "give a loopback --host or SGLANG_STANDIN_POD_IP"
        )
    return host


def _hosts() -> dict[str, str | None] | None:
    raw = os.environ.get("SGLANG_STANDIN_HOSTS", "").strip()
    return json.loads(raw) if raw else None


async def resolve_loopback(host: str, port: int) -> str:
    """The first loopback address ``host`` resolves to. ``socket.gaierror`` when it does not resolve;
    ``NotLoopbackError`` when it resolves only elsewhere (the stand-in never sends traffic off the loopback).

    ``SGLANG_STANDIN_HOSTS`` (a JSON object, name -> address) replaces the system resolver when set: a name it
    lacks does not resolve. Outside the simulation's namespace the system resolver may ask a DNS server off the
    machine; tests and local runs name their hosts this way instead."""
    host = host.strip("[]")
    if is_loopback(host):
        return host
    table = _hosts()
    if table is not None:
        address = table.get(host)
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if not is_loopback(address):
            raise NotLoopbackError(f"{host} resolves to no loopback address")
        return address
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for _family, _type, _proto, _name, sockaddr in infos:
        if is_loopback(str(sockaddr[0])):
            return str(sockaddr[0])
    raise NotLoopbackError(f"{host} resolves to no loopback address")


# ---------------------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    peer: str = ""
    version: str = "HTTP/1.1"

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query))

    def json(self):
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value, status: int = 200) -> Response:
        return cls(status, json.dumps(value).encode())

    @classmethod
    def text(cls, value: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
        return cls(status, value.encode(), content_type)

    @classmethod
    def empty(cls, status: int = 200) -> Response:
        return cls(status, b"", None)


@dataclass
class StreamResponse:
    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    # Called when the client goes away before the stream ended (SGLang aborts the request then).
    on_disconnect: Callable[[], None] | None = None


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


def not_found() -> Response:
    return Response.json({"detail": "Not Found"}, 404)


def method_not_allowed() -> Response:
    return Response.json({"detail": "Method Not Allowed"}, 405)


class HttpServer:
    """Serves ``handler`` on one address. ``hold`` (an Event, set = answer) lets a fault hook stop answering:
    connections are then accepted and read, but no response is written until it is set again."""

    def __init__(self, handler: Handler, host: str, port: int, hold: asyncio.Event | None = None):
        self.handler, self.host, self.port = handler, host, port
        self.hold = hold
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connection, self.host, self.port, reuse_address=True)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            while True:
                request = await _read_request(reader, writer, str(peer[0]) if peer else "")
                if request is None:
                    return
                if self.hold is not None:
                    await self.hold.wait()
                try:
                    response = await self.handler(request)
                except Exception as error:  # a handler bug answers 500 like uvicorn, not a dropped connection
                    response = Response.text(f"Internal Server Error: {error!r}", 500)
                connection = request.headers.get("connection", "").lower()
                keep = connection == "keep-alive" if request.version == "HTTP/1.0" else connection != "close"
                if isinstance(response, StreamResponse):
                    if not await _write_stream(writer, response):
                        return
                else:
                    _write_response(writer, response, keep)
                    await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        except asyncio.CancelledError:
            # The server is closing: end quietly (asyncio logs a connection task that ends cancelled).
            return
        finally:
            if task is not None:
                self.connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()


async def _read_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as error:
        raise ValueError("header too large") from error
    if len(head) > MAX_HEADER_BYTES:
        raise ValueError("header too large")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("expect", "").lower() == "100-continue":
        # curl sends this for larger bodies and waits a second for it, as uvicorn answers it.
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(parts)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY_BYTES:
            raise ValueError("body too large")
        body = await reader.readexactly(length)
    return Request(method.upper(), target, headers, body, peer, version.strip().upper())


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


def _write_response(writer: asyncio.StreamWriter, response: Response, keep: bool) -> None:
    head = [_status_line(response.status), b"server: uvicorn\r\n"]
    if response.content_type:
        head.append(f"content-type: {response.content_type}\r\n".encode())
    for name, value in response.headers.items():
        head.append(f"{name}: {value}\r\n".encode())
    head.append(f"content-length: {len(response.body)}\r\n".encode())
    if not keep:
        head.append(b"connection: close\r\n")
    writer.write(b"".join(head) + b"\r\n" + response.body)


async def _write_stream(writer: asyncio.StreamWriter, response: StreamResponse) -> bool:
    """Chunked transfer encoding; False when the client went away (the connection is then dropped)."""
    writer.write(
        _status_line(response.status)
        + b"server: uvicorn\r\n"
        + f"content-type: {response.content_type}\r\n".encode()
        + b"transfer-encoding: chunked\r\n\r\n"
    )
    try:
        await writer.drain()
        async for chunk in response.chunks:
            if chunk:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
    except (ConnectionError, asyncio.CancelledError):
        if response.on_disconnect is not None:
            response.on_disconnect()
        aclose = getattr(response.chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
        return False


# ---------------------------------------------------------------------------------------------------------
# Client (decode to prefill's bootstrap server)
# ---------------------------------------------------------------------------------------------------------


class HttpError(Exception):
    def __init__(self, status: int, body: bytes):
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status, self.body = status, body


async def request_json(
    method: str, host: str, port: int, path: str, body=None, timeout: float = 30.0, query: dict | None = None
):
    """One request on its own connection; the parsed JSON answer, ``HttpError`` for a non-2xx status. Raises
    ``socket.gaierror``/``OSError``/``NotLoopbackError`` when the peer cannot be reached."""
    address = await resolve_loopback(host, port)
    if query:
        from urllib.parse import urlencode

        path = f"{path}?{urlencode(query)}"
    data = json.dumps(body).encode() if body is not None else b""
    shown_host = f"[{address}]" if ":" in address else address

    async def exchange():
        reader, writer = await asyncio.open_connection(address, port)
        try:
            writer.write(
                f"{method} {path} HTTP/1.1\r\nhost: {shown_host}:{port}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            raw = await reader.read()
        finally:
            with contextlib.suppress(Exception):
                writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if b"transfer-encoding: chunked" in head.lower():
            payload = _dechunk(payload)
        if not 200 <= status < 300:
            raise HttpError(status, payload)
        return json.loads(payload or b"null")

    return await asyncio.wait_for(exchange(), timeout)


def _dechunk(data: bytes) -> bytes:
    out, rest = [], data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)
