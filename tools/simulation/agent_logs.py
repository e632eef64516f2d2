"""Container logs: written in the CRI log format the kubelet reads (``<RFC3339Nano> <stream> <F|P> <text>``, one
file per container instance, ``<restartCount>.log``), and served like the kubelet's
``/containerLogs/{namespace}/{pod}/{container}`` (follow, tailLines, previous, timestamps, sinceSeconds,
sinceTime, limitBytes) over HTTPS on the node's kubelet port, so ``kubectl logs`` works through the API server.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

MAX_LINE = 16 * 1024  # the kubelet splits longer lines into partial (P) records


def timestamp() -> str:
    t = time.time_ns()
    return dt.datetime.fromtimestamp(t // 10**9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{t % 10**9:09d}Z"


class LogWriter:
    """One container instance's log file; ``copy(stream, pipe)`` runs in a thread per stream."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")
        self._lock = threading.Lock()
        self._open_streams = 0
        self.closed = threading.Event()

    def copy(self, stream: str, pipe: IO[bytes]) -> None:
        with self._lock:
            self._open_streams += 1
        try:
            while True:
                chunk = pipe.readline(MAX_LINE)
                if not chunk:
                    break
                full = chunk.endswith(b"\n")
                text = chunk[:-1] if full else chunk
                record = f"{timestamp()} {stream} {'F' if full else 'P'} ".encode() + text + b"\n"
                with self._lock:
                    self._file.write(record)
                    self._file.flush()
        except (OSError, ValueError):
            pass
        finally:
            pipe.close()
            with self._lock:
                self._open_streams -= 1
                if self._open_streams == 0:
                    self._file.close()
                    self.closed.set()

    def start(self, stdout: IO[bytes], stderr: IO[bytes]) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.copy, args=("stdout", stdout), daemon=True, name=f"log {self.path}"),
            threading.Thread(target=self.copy, args=("stderr", stderr), daemon=True, name=f"log {self.path}"),
        ]
        for t in threads:
            t.start()
        return threads


def parse_time(text: str) -> float:
    """An RFC3339 (nano) timestamp as seconds since the epoch."""
    main, _, frac = text.rstrip("Z").partition(".")
    base = dt.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
    return base + (float("0." + frac) if frac else 0.0)


def records(data: bytes) -> Iterator[tuple[str, str, bool, bytes]]:
    """(timestamp, stream, full line, text) of each CRI record."""
    for line in data.split(b"\n"):
        if not line:
            continue
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            continue
        text = parts[3] if len(parts) == 4 else b""
        yield parts[0].decode(), parts[1].decode(), parts[2] == b"F", text


def render(data: bytes, options: dict[str, Any]) -> tuple[bytes, int]:
    """The log as the kubelet returns it, and how many bytes of ``data`` were consumed (complete records)."""
    end = data.rfind(b"\n") + 1
    recs = list(records(data[:end]))
    since = options.get("since")
    if since is not None:
        recs = [r for r in recs if parse_time(r[0]) >= since]
    tail = options.get("tailLines")
    if tail is not None:
        # tailLines counts full lines: keep the records of the last N of them
        count, start = 0, len(recs)
        for i in range(len(recs) - 1, -1, -1):
            if recs[i][2]:
                count += 1
                if count > tail:
                    break
            start = i
        recs = recs[start:] if tail > 0 else []
    out = bytearray()
    for ts, _stream, full, text in recs:
        if options.get("timestamps"):
            out += ts.encode() + b" "
        out += text + (b"\n" if full else b"")
    return bytes(out), end


def options_from_query(query: dict[str, list[str]]) -> dict[str, Any]:
    def flag(name: str) -> bool:
        return (query.get(name) or ["false"])[0].lower() in ("true", "1")

    opts: dict[str, Any] = {"follow": flag("follow"), "previous": flag("previous"), "timestamps": flag("timestamps")}
    if query.get("tailLines"):
        opts["tailLines"] = max(0, int(query["tailLines"][0]))
    if query.get("limitBytes"):
        opts["limitBytes"] = max(0, int(query["limitBytes"][0]))
    if query.get("sinceSeconds"):
        opts["since"] = time.time() - int(query["sinceSeconds"][0])
    elif query.get("sinceTime"):
        opts["since"] = parse_time(query["sinceTime"][0])
    return opts


# (namespace, pod, container, previous) -> (path, closed event or None) | error message
LogLocator = Callable[[str, str, str, bool], "tuple[Path, threading.Event | None] | str"]


class Handler(http.server.BaseHTTPRequestHandler):
    locate: LogLocator
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes (streams while following)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _error(self, code: int, message: str) -> None:
        body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": code}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        if parts == ["healthz"]:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._error(404, f"{url.path}: the sandbox agent serves only /containerLogs and /healthz")
            return
        try:
            opts = options_from_query(urllib.parse.parse_qs(url.query))
        except ValueError as exc:
            self._error(400, str(exc))
            return
        found = type(self).locate(parts[1], parts[2], parts[3], opts["previous"])
        if isinstance(found, str):
            self._error(404 if "not found" in found else 400, found)
            return
        path, closed = found
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        limit = opts.get("limitBytes")
        sent = 0
        try:
            with open(path, "rb") as f:
                data = f.read()
                buffered = b""
                first = True
                while True:
                    text, used = render(buffered + data, opts)
                    buffered = (buffered + data)[used:]
                    if not first:
                        opts.pop("tailLines", None)
                    first = False
                    if limit is not None:
                        text = text[: max(0, limit - sent)]
                    if text:
                        self.wfile.write(text)
                        self.wfile.flush()
                        sent += len(text)
                    if not opts["follow"] or (limit is not None and sent >= limit):
                        break
                    data = f.read()
                    if not data:
                        if closed is None or closed.is_set():
                            data = f.read()
                            if not data:
                                break
                        time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except FileNotFoundError:
            pass


def self_signed(cert: Path, key: Path, ips: list[str], name: str) -> None:
    """The kubelet's serving certificate when none is given (it makes one, self-signed, like this)."""
    if cert.exists() and key.exists():
        return
    cert.parent.mkdir(parents=True, exist_ok=True)
    san = ",".join([f"IP:{ip}" for ip in ips] + [f"DNS:{name}"])
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "365",
            "-subj",
            f"/CN={name}@sandbox",
            "-addext",
            f"subjectAltName={san}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )


def serve(address: str, port: int, cert: Path, key: Path, locate: LogLocator, client_ca: Path | None = None):
    """Start the log endpoint on address:port (HTTPS); returns the server (``shutdown()`` to stop it)."""
    handler = type("LogHandler", (Handler,), {"locate": staticmethod(locate)})
    server = http.server.ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    # The handshake happens in the handler thread (first read), so a slow client does not hold up the others.
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"logs {address}:{port}").start()
    return server
