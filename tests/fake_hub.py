"""A local stand-in for Hugging Face's resolve URLs and ModelScope's file API, with their error conventions,
for the tests that read a model's config.json (tests/test_config_json.py, the full-stack runs at preview)."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from sglang_platform.live.config_json import Endpoints

R1_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "num_attention_heads": 128,
    "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
}
INT8_CONFIG = {"quantization_config": {"quant_method": "blockwise_int8", "weight_block_size": [128, 128]}}
COMMIT = "a" * 40
TOKEN = "hf_test_token_never_real"


class FakeHub(BaseHTTPRequestHandler):
    """Hugging Face's resolve URLs and ModelScope's file API, with their error conventions."""

    seen: ClassVar[list[dict]] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def reply(self, status: int, body: bytes = b"", error_code: str | None = None):
        self.send_response(status)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        FakeHub.seen.append({"path": url.path, "query": url.query, "headers": dict(self.headers.items())})
        if url.path.startswith("/api/v1/models/"):
            return self.modelscope(url)
        parts = url.path.strip("/").split("/")
        if len(parts) != 5 or parts[2] != "resolve" or parts[4] != "config.json":
            return self.reply(404, error_code="EntryNotFound")
        repo, revision = "/".join(parts[:2]), parts[3]
        if repo == "deepseek-ai/DeepSeek-R1":
            if revision != COMMIT:
                return self.reply(404, error_code="RevisionNotFound")
            return self.reply(200, json.dumps(R1_CONFIG).encode())
        if repo == "meituan/DeepSeek-R1-Block-INT8":
            # Meituan publishes its INT8 conversion here (prod's source), at the moving main.
            if revision not in ("main", COMMIT):
                return self.reply(404, error_code="RevisionNotFound")
            return self.reply(200, json.dumps(INT8_CONFIG).encode())
        if repo == "meta-llama/Gated":
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self.reply(401 if "Authorization" not in self.headers else 403, error_code="GatedRepo")
            return self.reply(200, b'{"num_attention_heads": 32}')
        if repo == "team/not-json":
            return self.reply(200, b"<html>login</html>")
        if repo == "team/weights-only":
            return self.reply(404, error_code="EntryNotFound")
        return self.reply(404, error_code="RepoNotFound")

    def modelscope(self, url):
        query = urllib.parse.parse_qs(url.query)
        repo = url.path.removeprefix("/api/v1/models/").removesuffix("/repo")
        if query.get("FilePath") != ["config.json"]:
            return self.reply(400)
        if repo == "meituan/DeepSeek-R1-Block-INT8" and query.get("Revision") == ["master"]:
            return self.reply(200, json.dumps(INT8_CONFIG).encode())
        if repo == "team/private":
            return self.reply(403)
        if repo == "team/envelope":
            # An error some ModelScope endpoints return with status 200.
            return self.reply(200, b'{"Code": 10010205001, "Message": "model not found", "Success": false}')
        return self.reply(404, b'{"Code": 10010205001, "Message": "not found"}')


@contextmanager
def serve() -> Iterator[Endpoints]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield Endpoints(huggingface=base, modelscope=base)
    server.shutdown()
    server.server_close()
