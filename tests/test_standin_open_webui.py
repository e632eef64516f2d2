"""Open WebUI's stand-in (tools/simulation/standins/open_webui.py): its connections read from the environment as the
release's config.py reads them, and the model list built as its routers/openai.py builds it. No server is started
here (the e2e runs it inside the sandbox's namespace: tests/e2e/test_serve_prod.py)."""

from __future__ import annotations

import pytest

from tools.simulation.standins import open_webui

GATEWAY = "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000/v1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # What the platform renders: one gateway URL and, with requireApiKey, its key.
        ({"OPENAI_API_BASE_URLS": GATEWAY, "OPENAI_API_KEYS": "k"}, [(GATEWAY, "k")]),
        # Fewer keys than URLs: padded with empty keys (normalize_openai_api_keys).
        (
            {"OPENAI_API_BASE_URLS": f"{GATEWAY};http://b/v1", "OPENAI_API_KEYS": "k"},
            [(GATEWAY, "k"), ("http://b/v1", "")],
        ),
        # The singular variables, a trailing slash cut; nothing set is OpenAI's own URL.
        ({"OPENAI_API_BASE_URL": "http://a/v1/", "OPENAI_API_KEY": "x"}, [("http://a/v1", "x")]),
        ({}, [("https://api.openai.com/v1", "")]),
    ],
)
def test_connections_are_read_as_open_webui_reads_them(env, expected):
    assert open_webui.connections(env) == expected


def test_the_model_list_names_each_connections_models(monkeypatch):
    asked = []

    def fetch(url: str, key: str, body: bytes | None = None):
        asked.append((url, key))
        if url.startswith("http://down"):
            raise OSError("Connection refused")
        return 200, {"object": "list", "data": [{"id": "deepseek-r1", "object": "model", "owned_by": "sglang"}]}

    monkeypatch.setattr(open_webui, "fetch", fetch)
    env = {"OPENAI_API_BASE_URLS": f"http://down/v1;{GATEWAY}", "OPENAI_API_KEYS": ";secret"}
    assert open_webui.all_models(env) == [
        {
            "id": "deepseek-r1",
            "name": "deepseek-r1",
            "object": "model",
            "owned_by": "openai",
            "openai": {"id": "deepseek-r1", "object": "model", "owned_by": "sglang"},
            "urlIdx": 1,
            "connection_type": "external",
        }
    ]
    assert asked == [("http://down/v1/models", ""), (f"{GATEWAY}/models", "secret")]
    assert open_webui.all_models(env | {"ENABLE_OPENAI_API": "False"}) == []
