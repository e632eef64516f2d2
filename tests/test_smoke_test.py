"""tools/smoke_test.py against a local OpenAI-compatible server: what an operator sees on success and on
each way serving can be broken."""

from __future__ import annotations

import json

from conftest import _cached_run
from fake_openai import FakeOpenAI, serve

from sglang_platform.render.sglang_pods import PD_ROLE_LABEL, PD_SERVICE_LABEL
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


def test_a_disaggregated_roles_service_is_refused_before_any_port_forward(capsys, monkeypatch):
    calls = []

    def kubectl(*args):
        calls.append(args)
        return json.dumps(
            {"app.kubernetes.io/name": "sglang", PD_SERVICE_LABEL: "deepseek-r1", PD_ROLE_LABEL: "decode"}
        )

    monkeypatch.setattr(smoke_test, "_kubectl", kubectl)
    assert smoke_test.main(["--namespace", "deepseek", "--service", "deepseek-r1-decode-api"]) == 1
    assert capsys.readouterr().err == (
        "smoke test FAILED: svc/deepseek-r1-decode-api is the decode role of disaggregated service 'deepseek-r1': "
        "it answers health and metrics only; test the model through its gateway (--service deepseek-r1-gateway)\n"
    )
    assert calls == [
        ("-n", "deepseek", "get", "service", "deepseek-r1-decode-api", "-o", "jsonpath={.metadata.labels}")
    ]


def test_the_role_labels_are_the_ones_the_role_service_carries():
    pd = _cached_run("pd-h200", True)
    assert (smoke_test.PD_SERVICE_LABEL, smoke_test.PD_ROLE_LABEL) == (PD_SERVICE_LABEL, PD_ROLE_LABEL)
    for role in ("prefill", "decode"):
        labels = pd.k8s_object("Service", f"deepseek-r1-{role}-api")["metadata"]["labels"]
        assert (labels[PD_SERVICE_LABEL], labels[PD_ROLE_LABEL]) == ("deepseek-r1", role)
