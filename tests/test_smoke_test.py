"""tools/smoke_test.py against a local OpenAI-compatible server: what an operator sees on success and on
each way serving can be broken."""

from __future__ import annotations

from fake_openai import FakeOpenAI, serve

from tools import smoke_test


def test_lists_the_model_then_gets_an_answer_with_the_key(capsys):
    with serve(FakeOpenAI(model="deepseek-r1", api_key="k-123")) as fake:
        assert smoke_test.main(["--base-url", fake.base_url, "--api-key", "k-123"]) == 0
    assert capsys.readouterr().out == "smoke test passed: deepseek-r1 answered 'Hello from the fake server.'\n"
    (_, models, _), (_, path, body) = fake.requests
    assert (models, path) == ("/v1/models", "/v1/chat/completions")
    assert body is not None
    assert body["model"] == "deepseek-r1"
    assert body["messages"] == [{"role": "user", "content": "Say hello in one short sentence."}]


def test_a_wrong_key_says_so(capsys):
    with serve(FakeOpenAI(api_key="right")) as fake:
        assert smoke_test.main(["--base-url", fake.base_url, "--api-key", "sk-wrong-value"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"smoke test FAILED: GET {fake.base_url}/models: HTTP 401 (wrong or missing API key?)")
    assert "sk-wrong-value" not in err


def test_nothing_listening_says_where(capsys):
    with serve() as fake:
        url = fake.base_url
    assert smoke_test.main(["--base-url", url]) == 1
    assert capsys.readouterr().err.startswith(f"smoke test FAILED: GET {url}/models: <urlopen error")
