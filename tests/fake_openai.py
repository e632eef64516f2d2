"""A small OpenAI-compatible server on 127.0.0.1 for tests: /v1/models, /v1/chat/completions and
/v1/completions (plain or streamed, one chunk per token as SGLang streams them), /health and SGLang's
/flush_cache. It checks the bearer key when given one and records requests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FakeOpenAI:
    model: str = "fake-model"
    api_key: str | None = None
    answer: str = "Hello from the fake server."
    requests: list[tuple[str, str, dict | None]] = field(default_factory=list)
    # Authorization header of each request, in order.
    auth: list[str | None] = field(default_factory=list)
    port: int = 0
    # Streaming: seconds before the first token (a prefill) and between tokens.
    first_token_delay: float = 0.0
    token_delay: float = 0.001

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _json(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if fake.api_key is None or self.path == "/health":
                return True
            if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            self._json(401, {"error": "Unauthorized"})
            return False

        def do_GET(self) -> None:
            fake.requests.append(("GET", self.path, None))
            fake.auth.append(self.headers.get("Authorization"))
            if not self._authorized():
                return
            if self.path == "/health":
                self._json(200, {})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            fake.requests.append(("POST", self.path, body))
            fake.auth.append(self.headers.get("Authorization"))
            if not self._authorized():
                return
            if self.path.split("?")[0] == "/flush_cache":
                self._json(200, {})
                return
            chat = self.path == "/v1/chat/completions"
            if self.path not in ("/v1/chat/completions", "/v1/completions"):
                self._json(404, {"error": "not found"})
                return
            if body.get("stream"):
                self._stream(chat, body)
                return
            choice = {"index": 0, "finish_reason": "stop"}
            choice |= {"message": {"role": "assistant", "content": fake.answer}} if chat else {"text": fake.answer}
            words = len(fake.answer.split())
            self._json(
                200,
                {
                    "id": "cmpl-fake",
                    "object": "chat.completion" if chat else "text_completion",
                    "model": body.get("model", fake.model),
                    "choices": [choice],
                    "usage": {"prompt_tokens": 5, "completion_tokens": words, "total_tokens": 5 + words},
                },
            )

        def _stream(self, chat: bool, body: dict) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            tokens = max(1, int(body.get("max_tokens") or 8))
            time.sleep(fake.first_token_delay)
            for i in range(tokens):
                delta = {"delta": {"content": f"t{i} "}} if chat else {"text": f"t{i} "}
                chunk = {"id": "cmpl-fake", "model": body.get("model"), "choices": [{"index": 0, **delta}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(fake.token_delay)
            usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}
            # The last chunk carries no token: an empty delta (chat) or empty text (completions), as SGLang's.
            end: dict = {"index": 0, "finish_reason": "length"}
            if chat:
                end["delta"] = {}
            else:
                end["text"] = ""
            last = {"id": "cmpl-fake", "choices": [end], "usage": usage}
            self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()

    return Handler


class _Server(ThreadingHTTPServer):
    # A benchmark opens hundreds of connections at once; the default backlog of 5 would refuse most of them.
    request_queue_size = 1024
    daemon_threads = True


@contextmanager
def serve(fake: FakeOpenAI | None = None) -> Iterator[FakeOpenAI]:
    fake = fake or FakeOpenAI()
    server = _Server(("127.0.0.1", 0), _handler(fake))
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
