"""Open WebUI stood in: its connection to OpenAI-compatible APIs, as its pod's environment configures it.

Open WebUI's release does not run in the sandbox (docs/sandbox.md says why: its wheel pins some 110 packages,
torch among them through sentence-transformers and accelerate, several GB that CI would install for one page).
What the platform configures in it is its connection to the model gateway: this stand-in reads the same
environment the way Open WebUI's ``open_webui/config.py`` does (0.5.14 and 0.12.4 alike) and asks each connection
for its models as ``open_webui/routers/openai.py`` does, so the e2e shows the UI's pod reaching the gateway by its
Service name with the stack's key:

- ``OPENAI_API_BASE_URLS`` (``;``-separated; else ``OPENAI_API_BASE_URL``; an empty entry is OpenAI's URL, which
  cannot be reached here) and ``OPENAI_API_KEYS`` (``;``-separated; else ``OPENAI_API_KEY``; padded with empty
  keys when fewer than the URLs), ``ENABLE_OPENAI_API`` (default true);
- ``GET /health`` -> ``{"status": true}`` (the platform's probes);
- ``GET /api/models`` -> ``{"data": [...]}``: each connection's ``GET {url}/models`` with ``Authorization: Bearer
  <key>`` when a key is set, each model with ``urlIdx`` and ``connection_type: external``, a connection that fails
  logged as ``Connection error: ...`` and left out (Open WebUI's behaviour);
- ``POST /api/chat/completions``: forwarded to the connection that listed the model.

Not stood in: users and sign-in (the real endpoints need a signed-in user; these answer anyone), the database
under ``/app/backend/data``, the web front end, RAG, tools. Listens on ``PORT`` (8080) of the pod's address.

    python -m tools.simulation.standins.open_webui
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, ClassVar

from tools.simulation.standins.httpd import bind_address

OPENAI_URL = "https://api.openai.com/v1"
TIMEOUT = 10  # AIOHTTP_CLIENT_TIMEOUT_MODEL_LIST's default


def log(message: str) -> None:
    print(f"open-webui stand-in: {message}", file=sys.stderr, flush=True)


def connections(env: dict[str, str]) -> list[tuple[str, str]]:
    """(base URL, key) per connection, as open_webui/config.py reads them."""
    base = env.get("OPENAI_API_BASE_URL", "") or OPENAI_URL
    base = base[:-1] if base.endswith("/") else base
    urls = [u.strip() if u != "" else OPENAI_URL for u in (env.get("OPENAI_API_BASE_URLS", "") or base).split(";")]
    keys = [k.strip() for k in (env.get("OPENAI_API_KEYS", "") or env.get("OPENAI_API_KEY", "")).split(";")]
    keys = (keys + [""] * len(urls))[: len(urls)]
    return list(zip(urls, keys, strict=True))


def enabled(env: dict[str, str]) -> bool:
    return env.get("ENABLE_OPENAI_API", "True").lower() == "true"


def fetch(url: str, key: str, body: bytes | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT if body is None else 1800) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def all_models(env: dict[str, str]) -> list[dict]:
    models: list[dict] = []
    if not enabled(env):
        return models
    for idx, (url, key) in enumerate(connections(env)):
        try:
            status, body = fetch(f"{url}/models", key)
        except (OSError, ValueError) as error:
            log(f"Connection error: {error}")
            continue
        if status != 200 or not isinstance(body, dict):
            log(f"Connection error: {url}/models answered {status}: {str(body)[:200]}")
            continue
        for model in body.get("data") or []:
            model_id = model.get("id")
            models.append(
                {
                    "id": model_id,
                    "name": model.get("name") or model_id,
                    "object": "model",
                    "owned_by": "openai",
                    "openai": model,
                    "urlIdx": idx,
                    "connection_type": "external",
                }
            )
    return models


class Handler(http.server.BaseHTTPRequestHandler):
    env: ClassVar[dict[str, str]] = {}

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            return self._json(200, {"status": True})
        if self.path == "/api/models":
            return self._json(200, {"data": all_models(self.env)})
        return self._json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if self.path != "/api/chat/completions":
            return self._json(404, {"detail": "Not Found"})
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        model = (json.loads(body or b"{}") or {}).get("model")
        found = next((m for m in all_models(self.env) if m["id"] == model), None)
        if found is None:
            return self._json(404, {"detail": "Model not found"})
        url, key = connections(self.env)[found["urlIdx"]]
        status, answer = fetch(f"{url}/chat/completions", key, body)
        return self._json(status, answer)

    def log_message(self, fmt: str, *args: Any) -> None:
        log(fmt % args)


def main() -> int:
    Handler.env = dict(os.environ)
    port = int(os.environ.get("PORT", "8080"))
    host = bind_address(os.environ.get("HOST", "0.0.0.0"))
    server = http.server.ThreadingHTTPServer((host, port), Handler)
    urls = [url for url, _ in connections(Handler.env)]
    log(f"listening on {host}:{port}; OpenAI connections {urls}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
