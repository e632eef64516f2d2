"""ServingBenchmark: its stack keys and rules, the objects it renders (the exact bench_serving arguments, aimed
at the model's gateway or the group's Service), those arguments read against the bench_serving source of each
stack's release, the script's waiting, result parsing and SLO verdict, and the real ``python -m
sglang.bench_serving`` of the releases that can run here (the reference set's 0.4.3.post2; prod's 0.4.4, with a
stand-in torch; tools/bench_serving_releases.py) run by that script against a fake OpenAI server and a fake
Kubernetes API, both on 127.0.0.1."""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import API_KEY, ROOT, Capability, run_with, stack_values, unavailable
from fake_kube import FakeKube
from fake_kube import serve as serve_kube
from fake_openai import FakeOpenAI
from fake_openai import serve as serve_openai

from sglang_platform.components import benchmark
from sglang_platform.components.sglang_group import template_revision
from sglang_platform.config import ConfigError, validate
from sglang_platform.config.benchmark import Benchmark
from sglang_platform.config.monitoring import Slo
from sglang_platform.config.stack import InferenceGroup

SCRIPT = ROOT / "pod_scripts" / "serving_benchmark.py"
spec = importlib.util.spec_from_file_location("serving_benchmark", SCRIPT)
assert spec is not None and spec.loader is not None
sb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sb)

G = "sglang-platform:inferenceGroups[0]"
BENCH_VENV = ROOT / ".ci" / ".bench-venv"
# tests/fixtures/torch_stub: torch and triton as far as `import sglang` of 0.4.4 needs them, and no further.
TORCH_STUB = ROOT / "tests" / "fixtures" / "torch_stub"
# Whose SGLang release's bench_serving runs below (.ci/run installs each wheel): the reference set's, and prod's.
# dev's 0.5.23 is read from source only (tools/bench_serving_releases.py NOT_RUN).
BENCH_RUNS = [("reference", "0.4.3.post2"), ("prod", "0.4.4")]


def prod_group(**benchmark_keys) -> InferenceGroup:
    raw = copy.deepcopy(stack_values("prod")["inferenceGroups"][0])
    raw["benchmark"] = benchmark_keys
    return InferenceGroup.model_validate(raw)


# --- stack keys ----------------------------------------------------------------------------------------


def test_defaults_model_the_references_claims():
    b = Benchmark()
    assert (b.dataset, b.num_prompts, b.random_input_len, b.random_output_len, b.random_range_ratio) == (
        "random",
        2000,
        128,
        128,
        1.0,
    )
    assert (b.request_rate, b.max_concurrency, b.seed, b.ready_timeout_minutes) == (None, 256, 1, 240)
    slo = Slo()
    assert (slo.ttft_p99_seconds, slo.min_request_throughput, slo.itl_p99_seconds, slo.e2e_p99_seconds) == (
        0.2,
        200,
        None,
        None,
    )


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw, {"apiKey", "webuiSecretKey", "grafanaAdminPassword"})
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def test_rules():
    raw = copy.deepcopy(stack_values("prod"))
    raw["inferenceGroups"][0]["benchmark"] = {
        "dataset": "sharegpt",
        "maxConcurrency": None,
        "randomInputLen": 131000,
    }
    assert problems(raw) == [
        f"{G}.benchmark: set requestRate or maxConcurrency: with neither, bench_serving sends all 2000 requests at "
        "once",
        f"{G}.benchmark.datasetPath: required with dataset sharegpt: a ShareGPT JSON file inside the model volume "
        "(the benchmark downloads nothing)",
    ]
    raw["inferenceGroups"][0]["benchmark"] = {"datasetPath": "sharegpt.json", "randomInputLen": 131000}
    assert problems(raw) == [
        f"{G}.benchmark.datasetPath: only allowed with dataset sharegpt (random generates its prompts)",
        f"{G}.benchmark.randomInputLen: randomInputLen + randomOutputLen (131128 tokens) exceed the group's "
        "contextLength (131072): SGLang would reject every request",
    ]
    raw["inferenceGroups"][0]["benchmark"] = {"randomRangeRatio": 1.5, "requestRate": 0}
    assert problems(raw) == [
        f"{G}.benchmark.randomRangeRatio: Input should be less than or equal to 1 (got 1.5)",
        f"{G}.benchmark.requestRate: Input should be greater than 0 (got 0)",
    ]


# --- rendered objects ----------------------------------------------------------------------------------


def bench_job(result) -> dict:
    (job,) = [o for o in result_objects(result) if o["kind"] == "Job" and "-bench-" in o["metadata"]["name"]]
    return job


def result_objects(result) -> list[dict]:
    from tools import harness

    return harness.kubernetes_objects(result)


PROD_GATEWAY = "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000"
PROD_SERVICE = "http://deepseek-r1-api.deepseek.svc.cluster.local:8000"
PROD_IDENTITY = '{"repo": "meituan/DeepSeek-R1-Block-INT8", "revision": "main", "source": "huggingface"}'
PROD_ARGS = [
    "--backend",
    "sglang-oai",
    "--base-url",
    PROD_GATEWAY,
    "--model",
    "deepseek-r1",
    "--tokenizer",
    "/mnt/catcat_data/model/DeepSeek-R1-Block-INT8",
    "--dataset-name",
    "random",
    "--dataset-path",
    "/tmp/bench/dataset.json",
    "--num-prompts",
    "2000",
    "--random-input-len",
    "128",
    "--random-output-len",
    "128",
    "--random-range-ratio",
    "1",
    "--request-rate",
    "inf",
    "--max-concurrency",
    "256",
    "--seed",
    "1",
    "--output-file",
    "/tmp/bench/result.jsonl",
    "--disable-tqdm",
]


def job_args(result) -> list[str]:
    return bench_job(result)["spec"]["template"]["spec"]["containers"][0]["command"][3:]


def test_prod_runs_sglangs_bench_serving_through_the_models_gateway(prod):
    job = bench_job(prod)
    meta = job["metadata"]
    assert meta["namespace"] == "deepseek"
    group_revision = template_revision(prod.k8s_object("LeaderWorkerSet", "deepseek-r1")["spec"])
    assert meta["name"].startswith("deepseek-r1-bench-") and len(meta["name"]) == len("deepseek-r1-bench-") + 10
    annotations = meta["annotations"]
    assert annotations["pulumi.com/skipAwait"] == "true"
    assert annotations["sglang-platform.io/revision"] == group_revision
    assert sorted(v.split("=", 1)[0] for k, v in annotations.items() if k.startswith("checkov.io/")) == [
        "CKV_K8S_15",
        "CKV_K8S_35",
        "CKV_K8S_38",
        "CKV_K8S_43",
    ]
    spec = job["spec"]
    # The ready timeout (the weights and the group), the run (2 h), and 30 minutes to be scheduled and pull the
    # image: the script's clocks end first, and it publishes why.
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (1, 240 * 60 + 7200 + 1800)
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"]["sglang-platform.io/api-client"] == "true"
    (c,) = pod["containers"]
    # The group's own image (prod pins SGLang 0.4.4): bench_serving of the release it serves.
    assert c["image"] == "lmsysorg/sglang:v0.4.4-cu124"
    assert c["command"] == ["python3", "/opt/sglang-platform-benchmark/serving_benchmark.py", "--", *PROD_ARGS]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env == {
        # The gateway fronts the group: the Job calls what clients call (`pulumi stack output gateway`).
        "BENCH_BASE_URL": PROD_GATEWAY,
        "BENCH_MODEL": "deepseek-r1",
        "BENCH_SLO": '{"e2eP99Seconds": null, "itlP99Seconds": null, "minRequestThroughput": 200.0, '
        '"ttftP99Seconds": 0.2}',
        "BENCH_REVISION": group_revision,
        "BENCH_GROUP": "deepseek-r1",
        "BENCH_NAMESPACE": "deepseek",
        "BENCH_CONFIGMAP": "deepseek-r1-benchmark",
        "READY_TIMEOUT_SECONDS": "14400",
        "BENCH_RUN_TIMEOUT_SECONDS": "7200",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HOME": "/tmp/bench",
        "PYTHONUNBUFFERED": "1",
        # The staged weights on this node, as the group's wait-for-weights gate waits for them.
        "BENCH_WEIGHTS_DIR": "/mnt/catcat_data/model/DeepSeek-R1-Block-INT8",
        "BENCH_WEIGHTS_IDENTITY": PROD_IDENTITY,
        "BENCH_WEIGHTS_HINT": "daemonset/deepseek-r1-weights fetches them (kubectl logs daemonset/deepseek-r1-weights)",
        "BENCH_NODE": {"fieldRef": {"fieldPath": "spec.nodeName"}},
        "OPENAI_API_KEY": {"secretKeyRef": {"name": "deepseek-r1-api-key", "key": "api-key"}},
    }
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert pod["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
    }
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"], pod["restartPolicy"]) == (
        "deepseek-r1-benchmark",
        True,
        "Never",
    )
    # On a host path the tokenizer is on the nodes that hold the weights: the staged GPU nodes. The script waits
    # for them itself (env above), on its ready clock: no init container whose wait the Job's deadline counts.
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "initContainers" not in pod
    assert pod["volumes"] == [
        {"name": "models", "hostPath": {"path": "/mnt/catcat_data/model", "type": "DirectoryOrCreate"}},
        {"name": "benchmark-script", "configMap": {"name": "deepseek-r1-benchmark-script", "defaultMode": 0o444}},
        {"name": "benchmark-work", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    # The same directory, identity and hint as the group's own gate.
    (group_gate,) = prod.k8s_object("LeaderWorkerSet", "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"][
        "spec"
    ]["initContainers"][:1]
    gate_env = {e["name"]: e["value"] for e in group_gate["env"]}
    assert (gate_env["MODEL_DIR"], gate_env["MODEL_IDENTITY"], gate_env["WAIT_HINT"]) == (
        env["BENCH_WEIGHTS_DIR"],
        env["BENCH_WEIGHTS_IDENTITY"],
        env["BENCH_WEIGHTS_HINT"],
    )
    assert {"name": "models", "mountPath": "/mnt/catcat_data/model", "readOnly": True} in c["volumeMounts"]


def test_the_job_may_read_its_group_and_write_its_result_and_nothing_else(prod):
    role = prod.k8s_object("Role", "deepseek-r1-benchmark")
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["deepseek-r1-benchmark"],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["leaderworkerset.x-k8s.io"],
            "resources": ["leaderworkersets"],
            "resourceNames": ["deepseek-r1"],
            "verbs": ["get"],
        },
    ]
    binding = prod.k8s_object("RoleBinding", "deepseek-r1-benchmark")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "deepseek-r1-benchmark",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "deepseek-r1-benchmark", "namespace": "deepseek"}]
    assert prod.k8s_object("ServiceAccount", "deepseek-r1-benchmark")["automountServiceAccountToken"] is False
    policy = prod.k8s_object("NetworkPolicy", "deepseek-r1-benchmark")["spec"]
    assert policy["ingress"] == [] and policy["policyTypes"] == ["Ingress"]
    # The results ConfigMap has no data of its own: the Job's keys are never reset by an up.
    results = prod.k8s_object("ConfigMap", "deepseek-r1-benchmark")
    assert "data" not in results
    assert "data" in prod.named("deepseek-r1-benchmark-results").ignore_changes
    script = prod.k8s_object("ConfigMap", "deepseek-r1-benchmark-script")
    assert script["data"] == {"serving_benchmark.py": SCRIPT.read_text()}


def test_the_stack_output_names_the_job_and_waits_for_a_refresh(prod):
    out = prod.outputs["benchmarks"]["deepseek-r1"]
    assert out["job"] == bench_job(prod)["metadata"]["name"]
    # The gateway's base URL (the stack output clients read), without /v1 as bench_serving takes it.
    assert out["target"] == PROD_GATEWAY
    assert prod.outputs["gateway"]["deepseek-r1"]["baseUrl"] == PROD_GATEWAY + "/v1"
    assert (out["configMap"], out["status"], out["passed"], out["result"]) == (
        "deepseek-r1-benchmark",
        None,
        None,
        None,
    )
    assert out["revision"] == template_revision(prod.k8s_object("LeaderWorkerSet", "deepseek-r1")["spec"])


def _job_name(result) -> str:
    return bench_job(result)["metadata"]["name"]


def test_a_new_revision_runs_the_benchmark_again_and_an_unchanged_stack_does_not(prod):
    first = _job_name(prod)
    assert _job_name(run_with("prod", lambda v: None, secrets={"apiKey": API_KEY})) == first

    def new_weights(values):
        values["inferenceGroups"][0]["model"]["download"]["revision"] = "v2"

    def new_slo(values):
        values["monitoring"]["slo"]["ttftP99Seconds"] = 0.3

    def scaled(values):
        values["inferenceGroups"][0]["autoscaling"]["minReplicas"] = 2

    again = _job_name(run_with("prod", new_weights, secrets={"apiKey": API_KEY}))
    assert again != first
    assert _job_name(run_with("prod", new_slo, secrets={"apiKey": API_KEY})) not in (first, again)
    # Scaling serves the same revision: no new benchmark.
    assert _job_name(run_with("prod", scaled, secrets={"apiKey": API_KEY})) == first


def test_the_gateway_admits_the_job_and_the_job_waits_for_it(prod):
    """The Job's pod is a labelled API client, which the gateway's NetworkPolicy admits on its API port; the
    Job is created after the gateway (and the group) it measures."""
    labels = bench_job(prod)["spec"]["template"]["metadata"]["labels"]
    (api,) = [
        rule
        for rule in prod.k8s_object("NetworkPolicy", "deepseek-r1-gateway-ingress")["spec"]["ingress"]
        if rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    ]
    admitted = [peer["podSelector"]["matchLabels"] for peer in api["from"] if "podSelector" in peer]
    assert any(all(labels.get(k) == v for k, v in selector.items()) for selector in admitted), admitted
    deps = set(prod.named("deepseek-r1-benchmark-job").dependencies)
    assert prod.urn_of("deepseek-r1-gateway-deployment") in deps
    assert prod.urn_of("deepseek-r1-lws") in deps


def test_without_a_gateway_the_job_calls_the_groups_service():
    result = run_with("prod", lambda v: v["gateway"].update(enabled=False), secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    args = job_args(result)
    assert args[args.index("--base-url") + 1] == PROD_SERVICE
    assert args == [PROD_SERVICE if a == PROD_GATEWAY else a for a in PROD_ARGS]
    env = {e["name"]: e.get("value") for e in bench_job(result)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BENCH_BASE_URL"] == PROD_SERVICE
    assert result.outputs["benchmarks"]["deepseek-r1"]["target"] == PROD_SERVICE
    deps = set(result.named("deepseek-r1-benchmark-job").dependencies)
    assert not [d for d in deps if "gateway" in d]


def test_a_group_the_gateway_does_not_front_is_benchmarked_on_its_service():
    """gateway.groups names the groups behind it; a benchmarked group left out is measured directly."""

    def two_groups(values):
        first = values["inferenceGroups"][0]
        second = copy.deepcopy(first)
        second["name"] = "qwen-direct"
        second["model"]["servedName"] = "qwen-direct"
        # The same weights on the claim the first group's cache creates.
        second["modelVolume"] = {"type": "pvc", "claimName": "models"}
        second["benchmark"] = {"numPrompts": 100, "maxConcurrency": 8}
        first["benchmark"] = {"numPrompts": 100, "maxConcurrency": 8}
        values["inferenceGroups"].append(second)
        values["gateway"]["groups"] = ["qwen-small"]

    result = run_with("dev", two_groups)
    assert result.error is None, result.error
    targets = {name: out["target"] for name, out in result.outputs["benchmarks"].items()}
    assert targets == {
        "qwen-small": "http://qwen-small-gateway.sglang-dev.svc.cluster.local:8000",
        "qwen-direct": "http://qwen-direct-api.sglang-dev.svc.cluster.local:8000",
    }


def test_every_slo_key_reaches_the_job_as_spelled_in_the_docs():
    def slo(values):
        values["monitoring"]["slo"].update(itlP99Seconds=0.05, e2eP99Seconds=30)

    result = run_with("prod", slo, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    env = {e["name"]: e.get("value") for e in bench_job(result)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(env["BENCH_SLO"]) == {
        "ttftP99Seconds": 0.2,
        "minRequestThroughput": 200,
        "itlP99Seconds": 0.05,
        "e2eP99Seconds": 30,
    }


def test_dev_opts_in_with_an_empty_mapping():
    def opt_in(values):
        values["inferenceGroups"][0]["benchmark"] = {"numPrompts": 200, "maxConcurrency": 16, "requestRate": 20}

    result = run_with("dev", opt_in)
    assert result.error is None, result.error
    pod = bench_job(result)["spec"]["template"]["spec"]
    args = pod["containers"][0]["command"][3:]
    # dev's gateway fronts its group too.
    assert args[args.index("--base-url") + 1] == "http://qwen-small-gateway.sglang-dev.svc.cluster.local:8000"
    assert pod["containers"][0]["image"] == "lmsysorg/sglang:v0.5.23-cu130"
    assert args[args.index("--request-rate") + 1] == "20"
    assert args[args.index("--max-concurrency") + 1] == "16"
    assert args[args.index("--tokenizer") + 1] == "/models/Qwen2.5-1.5B-Instruct"
    # No API key in dev: nothing to send.
    assert "OPENAI_API_KEY" not in [e["name"] for e in pod["containers"][0]["env"]]
    assert pod["volumes"][0] == {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}
    assert "nodeSelector" not in pod
    # The download Job fills the claim: the script waits for its marker (no init container).
    assert "initContainers" not in pod
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert (env["BENCH_WEIGHTS_DIR"], env["BENCH_WEIGHTS_HINT"]) == (
        "/models/Qwen2.5-1.5B-Instruct",
        "job/qwen-small-model-download fetches them (kubectl logs job/qwen-small-model-download)",
    )


def test_without_a_benchmark_key_nothing_is_rendered(dev):
    assert not [o for o in result_objects(dev) if "benchmark" in o["metadata"]["name"]]
    assert "benchmarks" not in dev.outputs


def test_sharegpt_reads_the_file_from_the_model_volume():
    g = prod_group(dataset="sharegpt", datasetPath="datasets/sharegpt.json", maxConcurrency=32)
    assert g.benchmark is not None
    args = benchmark.bench_args(g, g.benchmark, "http://x:8000", "m")
    assert args[args.index("--dataset-path") + 1] == "/mnt/catcat_data/model/datasets/sharegpt.json"
    assert "--random-input-len" not in args


def test_the_component_refuses_an_invalid_config_before_creating_anything():
    g = prod_group()
    with pytest.raises(ValueError) as info:
        benchmark._refuse_invalid("b", g, Benchmark(max_concurrency=None))
    assert str(info.value) == (
        "ServingBenchmark 'b': invalid config (1 problem):\n  - benchmark: set requestRate or maxConcurrency: with "
        "neither, bench_serving sends all 2000 requests at once"
    )


def test_results_read_back_from_the_config_map():
    result = {"passed": False, "revision": "r"}
    data = {"status": "done", "passed": "false", "result.json": json.dumps(result)}
    assert benchmark.read_results(data) == ("done", False, result)
    assert benchmark.read_results({"status": "waiting", "revision": "r2"}) == ("waiting", None, None)
    assert benchmark.read_results(None) == (None, None, None)


def _bench_source(wheel: Path) -> str:
    """bench_serving's source in a release's wheel (0.5.x keeps it in sglang/benchmark/serving.py)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        module = "sglang/benchmark/serving.py" if "sglang/benchmark/serving.py" in names else "sglang/bench_serving.py"
        return archive.read(module).decode()


def _options(source: str) -> set[str]:
    """Every option string of the module's ``add_argument`` calls."""
    tree = ast.parse(source)
    return {
        a.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "add_argument"
        for a in n.args
        if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")
    }


def _backends(source: str) -> set[str]:
    """The keys of ``ASYNC_REQUEST_FUNCS``: the values --backend accepts."""
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict):
            if any(isinstance(t, ast.Name) and t.id == "ASYNC_REQUEST_FUNCS" for t in n.targets):
                return {k.value for k in n.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return set()


def _choices(source: str, flag: str) -> set[str]:
    """The literal ``choices`` of an ``add_argument(flag, ...)`` call."""
    for n in ast.walk(ast.parse(source)):
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "add_argument"):
            continue
        if not any(isinstance(a, ast.Constant) and a.value == flag for a in n.args):
            continue
        for kw in n.keywords:
            if kw.arg == "choices" and isinstance(kw.value, ast.List | ast.Tuple):
                return {e.value for e in kw.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()


def _result_keys(source: str) -> set[str]:
    """The keys of the ``result = {...}`` literal bench_serving writes to --output-file."""
    keys: set[str] = set()
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict):
            if any(isinstance(t, ast.Name) and t.id == "result" for t in n.targets):
                keys |= {k.value for k in n.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return keys


def _cached_wheels() -> list[Path]:
    from tools import sglang_flags

    wheels = sorted(sglang_flags.CACHE.glob("sglang-*.whl"))
    if not wheels:
        unavailable(Capability.SGLANG_WHEELS, f"no sglang wheel in {sglang_flags.CACHE}")
    return wheels


def test_every_flag_is_an_option_of_each_cached_release():
    """Every release whose wheel is cached (every shipped flag table's) knows every flag the Job passes, the
    backend and the datasets."""
    flags = {a for a in PROD_ARGS if a.startswith("--")}
    for wheel in _cached_wheels():
        source = _bench_source(wheel)
        assert flags - _options(source) == set(), wheel.name
        assert "sglang-oai" in _backends(source), wheel.name
        assert {"random", "sharegpt"} <= _choices(source, "--dataset-name"), wheel.name


def _stack_release(stack: str) -> str:
    from sglang_platform.config import Versions

    return str(Versions.model_validate(stack_values(stack).get("versions", {})).sglang_release)


def _stack_job(stack: str):
    """The stack's rendered Job (dev opts in here: it has no benchmark key of its own)."""

    def opt_in(values):
        for g in values["inferenceGroups"]:
            g.setdefault("benchmark", {})

    return run_with(stack, opt_in, secrets={"apiKey": API_KEY})


@pytest.mark.parametrize(
    ("stack", "release", "image"),
    [("dev", "0.5.23", "lmsysorg/sglang:v0.5.23-cu130"), ("prod", "0.4.4", "lmsysorg/sglang:v0.4.4-cu124")],
)
def test_each_stacks_job_is_read_against_the_bench_serving_of_its_own_release(stack, release, image):
    """The Job runs bench_serving from the stack's SGLang image: the exact arguments the stack renders are
    options (and values) of that release's bench_serving, and its result line has the keys the script reads.
    The real run of each of these releases is below (docs/benchmark-slo.md, "Tested how")."""
    from tools import sglang_flags

    assert _stack_release(stack) == release
    result = _stack_job(stack)
    assert result.error is None, result.error
    (container,) = bench_job(result)["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image
    wheel = sglang_flags.wheel_for(release)
    if wheel is None:
        unavailable(Capability.SGLANG_WHEELS, f"no sglang {release} wheel in {sglang_flags.CACHE}")
    source = _bench_source(wheel)
    args = container["command"][3:]
    assert {a for a in args if a.startswith("--")} - _options(source) == set()
    assert args[args.index("--backend") + 1] in _backends(source)
    assert args[args.index("--dataset-name") + 1] in _choices(source, "--dataset-name")
    assert set(RAW_043) - _result_keys(source) == set()
    # bench_serving sends the key from OPENAI_API_KEY (0.4.4 also on /flush_cache; both ignore its answer).
    assert 'os.environ.get("OPENAI_API_KEY")' in source or "os.environ.get('OPENAI_API_KEY')" in source


def test_each_cached_release_writes_the_keys_the_result_is_read_from():
    """The keys the script reads (RAW_043, the 0.4.3.post2 line) are in each release's result literal."""
    for wheel in _cached_wheels():
        assert set(RAW_043) - _result_keys(_bench_source(wheel)) == set(), wheel.name


# --- the script: waiting, parsing, the verdict ---------------------------------------------------------

# A line bench_serving 0.4.3.post2 wrote against the fake server (its 33 keys), values rounded.
RAW_043 = {
    "backend": "sglang-oai",
    "dataset_name": "random",
    "request_rate": float("inf"),
    "max_concurrency": 256,
    "sharegpt_output_len": None,
    "random_input_len": 128,
    "random_output_len": 128,
    "random_range_ratio": 1.0,
    "duration": 9.8,
    "completed": 2000,
    "total_input_tokens": 256000,
    "total_output_tokens": 256000,
    "total_output_tokens_retokenized": 255990,
    "request_throughput": 204.08,
    "input_throughput": 26122.4,
    "output_throughput": 26122.4,
    "mean_e2e_latency_ms": 1201.3,
    "median_e2e_latency_ms": 1190.2,
    "std_e2e_latency_ms": 80.1,
    "p99_e2e_latency_ms": 1420.5,
    "mean_ttft_ms": 61.2,
    "median_ttft_ms": 48.7,
    "std_ttft_ms": 30.2,
    "p99_ttft_ms": 187.3,
    "mean_tpot_ms": 8.97,
    "median_tpot_ms": 8.9,
    "std_tpot_ms": 0.4,
    "p99_tpot_ms": 10.2,
    "mean_itl_ms": 8.96,
    "median_itl_ms": 8.8,
    "std_itl_ms": 1.1,
    "p99_itl_ms": 14.9,
    "concurrency": 245.2,
}
SLO = {"ttftP99Seconds": 0.2, "minRequestThroughput": 200, "itlP99Seconds": None, "e2eP99Seconds": None}
CONTEXT = {
    "group": "deepseek-r1",
    "model": "deepseek-r1",
    "revision": "1ae4af0433e3",
    "target": "http://deepseek-r1-gateway.deepseek.svc.cluster.local:8000",
    "startedAt": "2026-12-01T10:00:00Z",
    "finishedAt": "2026-12-01T10:00:12Z",
    "benchServing": "0.4.3.post2",
}


def test_a_result_line_becomes_the_published_result_with_its_verdict(tmp_path):
    out = tmp_path / "result.jsonl"
    # bench_serving appends: an earlier run's line first, this run's last.
    out.write_text(json.dumps({"completed": 1}) + "\n" + json.dumps(RAW_043) + "\n")
    raw = sb.read_result(out)
    assert raw["request_rate"] == float("inf")
    result = sb.summarize(raw, 2000, SLO, CONTEXT)
    assert result == CONTEXT | {
        "workload": {
            "backend": "sglang-oai",
            "dataset": "random",
            "numPrompts": 2000,
            "randomInputLen": 128,
            "randomOutputLen": 128,
            "randomRangeRatio": 1.0,
            "requestRate": "inf",
            "maxConcurrency": 256,
        },
        "completed": 2000,
        "failed": 0,
        "durationSeconds": 9.8,
        "throughput": {"requestsPerSecond": 204.08, "inputTokensPerSecond": 26122.4, "outputTokensPerSecond": 26122.4},
        "ttftMs": {"mean": 61.2, "median": 48.7, "p99": 187.3},
        "itlMs": {"mean": 8.96, "median": 8.8, "p99": 14.9},
        "tpotMs": {"mean": 8.97, "median": 8.9, "p99": 10.2},
        "e2eLatencyMs": {"mean": 1201.3, "median": 1190.2, "p99": 1420.5},
        "concurrency": 245.2,
        "slo": {
            "passed": True,
            "checks": [
                {"name": "allRequestsSucceeded", "target": 2000, "measured": 2000, "passed": True},
                {"name": "ttftP99Seconds", "target": 0.2, "measured": 0.1873, "passed": True},
                {"name": "minRequestThroughput", "target": 200, "measured": 204.08, "passed": True},
            ],
        },
        "passed": True,
    }
    # Valid JSON for the ConfigMap and the stack output: no Infinity.
    json.loads(json.dumps(result), parse_constant=lambda c: pytest.fail(f"{c} in the result"))


def test_the_summary_shows_the_verdict_and_the_numbers():
    text = sb.summary_text(sb.summarize(RAW_043, 2000, SLO, CONTEXT))
    assert text.splitlines() == [
        "SLO PASSED: deepseek-r1 revision 1ae4af0433e3 (2026-12-01T10:00:12Z, bench_serving 0.4.3.post2)",
        "  workload  2000 requests, random 128/128 tokens, rate inf, max concurrency 256, 9.8 s",
        "  throughput  204.1 req/s, 26122 output tok/s",
        "  latency (ms)    mean   median      p99",
        "    TTFT           61.2     48.7    187.3",
        "    ITL             9.0      8.8     14.9",
        "    TPOT            9.0      8.9     10.2",
        "    end-to-end   1201.3   1190.2   1420.5",
        "  ok    requests succeeded: 2000 of 2000",
        "  ok    TTFT p99: 187.3 ms <= 200.0 ms",
        "  ok    request throughput: 204.1 req/s >= 200 req/s",
    ]


def test_a_slow_or_lossy_run_fails_the_checks_it_misses():
    raw = RAW_043 | {"completed": 1990, "p99_ttft_ms": 640.0, "request_throughput": 120.5, "p99_itl_ms": 55.0}
    result = sb.summarize(raw, 2000, SLO | {"itlP99Seconds": 0.05}, CONTEXT)
    assert [(c["name"], c["passed"]) for c in result["slo"]["checks"]] == [
        ("allRequestsSucceeded", False),
        ("ttftP99Seconds", False),
        ("itlP99Seconds", False),
        ("minRequestThroughput", False),
    ]
    assert result["failed"] == 10 and result["passed"] is False
    lines = sb.summary_text(result).splitlines()
    assert lines[0].startswith("SLO FAILED: deepseek-r1 revision 1ae4af0433e3")
    assert lines[-4:] == [
        "  FAIL  requests succeeded: 1990 of 2000",
        "  FAIL  TTFT p99: 640.0 ms <= 200.0 ms",
        "  FAIL  ITL p99: 55.0 ms <= 50.0 ms",
        "  FAIL  request throughput: 120.5 req/s >= 200 req/s",
    ]


def test_later_releases_add_percentiles_that_are_kept():
    raw = RAW_043 | {"p90_ttft_ms": 120.0, "p95_ttft_ms": 150.0, "request_rate": 32.0}
    result = sb.summarize(raw, 2000, SLO, CONTEXT)
    assert result["ttftMs"] == {"mean": 61.2, "median": 48.7, "p90": 120.0, "p95": 150.0, "p99": 187.3}
    assert result["workload"]["requestRate"] == 32.0


def test_a_missing_or_empty_result_is_an_error(tmp_path):
    with pytest.raises(sb.BenchmarkError, match="bench_serving wrote no result to"):
        sb.read_result(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(sb.BenchmarkError, match="bench_serving wrote no result to"):
        sb.read_result(tmp_path / "empty.jsonl")


def lws(generation=2, observed=2, replicas=1, ready=1, updated=1, total=1) -> dict:
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "readyReplicas": ready,
            "updatedReplicas": updated,
        },
    }


def test_a_group_serves_its_revision_once_every_group_is_updated_and_ready():
    assert sb.group_serving(lws()) == (True, "1 of 1 groups ready, 1 updated")
    assert sb.group_serving(lws(observed=1)) == (False, "1 of 1 groups ready, 1 updated, spec change not yet observed")
    # The old group is still up and ready while the new one loads: not yet.
    assert sb.group_serving(lws(updated=0)) == (False, "1 of 1 groups ready, 0 updated")
    assert sb.group_serving(lws(replicas=2, total=2, ready=1, updated=2)) == (False, "1 of 2 groups ready, 2 updated")
    assert sb.group_serving(lws(ready=1, updated=1, total=2)) == (False, "1 of 1 groups ready, 1 updated")


def test_the_random_dataset_has_one_prompt_per_request_and_is_reproducible(tmp_path):
    sb.write_random_dataset(tmp_path / "a.json", 50, 7)
    sb.write_random_dataset(tmp_path / "b.json", 50, 7)
    rows = json.loads((tmp_path / "a.json").read_text())
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert len(rows) == 50 and len({r["conversations"][0]["value"] for r in rows}) == 50
    assert all(len(r["conversations"]) == 2 and len(r["conversations"][0]["value"].split()) == 96 for r in rows)


def test_arguments_are_read_in_both_spellings():
    args = ["--num-prompts", "20", "--output-file=/tmp/x.jsonl"]
    assert (sb.arg(args, "--num-prompts"), sb.arg(args, "--output-file"), sb.arg(args, "--seed", "1")) == (
        "20",
        "/tmp/x.jsonl",
        "1",
    )


def test_waiting_gives_up_with_what_it_saw(tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    ticks = iter(range(0, 10_000, 10))
    with serve_kube(FakeKube(leader_worker_sets=[lws(ready=0)])) as kube:
        env = {
            "KUBERNETES_API_URL": kube.url,
            "SERVICEACCOUNT_DIR": str(sa),
            "BENCH_GROUP": "deepseek-r1",
            "BENCH_NAMESPACE": "deepseek",
            "BENCH_BASE_URL": "http://127.0.0.1:9",
            "BENCH_MODEL": "deepseek-r1",
            "READY_TIMEOUT_SECONDS": "30",
        }
        with pytest.raises(sb.BenchmarkError) as info:
            sb.wait_until_serving(env, sb.KubeApi(env), sleep=lambda _: None, clock=lambda: next(ticks))
    assert str(info.value) == "not serving after 30 s: leaderworkerset deepseek-r1: 0 of 1 groups ready, 1 updated"
    assert kube.requests[0] == (
        "GET",
        "/apis/leaderworkerset.x-k8s.io/v1/namespaces/deepseek/leaderworkersets/deepseek-r1",
    )


def test_a_disaggregated_service_is_waited_for_on_both_roles(tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token\n")
    ticks = iter(range(0, 10_000, 10))
    # prefill serves, decode is still loading (each poll reads prefill, then decode)
    with serve_kube(FakeKube(leader_worker_sets=[lws(), lws(ready=0)])) as kube:
        env = {
            "KUBERNETES_API_URL": kube.url,
            "SERVICEACCOUNT_DIR": str(sa),
            "BENCH_GROUP": "deepseek-r1",
            "BENCH_LEADERWORKERSETS": "deepseek-r1-prefill,deepseek-r1-decode",
            "BENCH_NAMESPACE": "deepseek",
            "BENCH_BASE_URL": "http://127.0.0.1:9",
            "BENCH_MODEL": "deepseek-r1",
            # one poll: the first that is not serving is named
            "READY_TIMEOUT_SECONDS": "0",
        }
        with pytest.raises(sb.BenchmarkError) as info:
            sb.wait_until_serving(env, sb.KubeApi(env), sleep=lambda _: None, clock=lambda: next(ticks))
    assert str(info.value) == (
        "not serving after 0 s: leaderworkerset deepseek-r1-decode: 0 of 1 groups ready, 1 updated"
    )
    base = "/apis/leaderworkerset.x-k8s.io/v1/namespaces/deepseek/leaderworkersets/"
    assert kube.requests[:2] == [("GET", base + "deepseek-r1-prefill"), ("GET", base + "deepseek-r1-decode")]
    assert base + "deepseek-r1" not in [path for _, path in kube.requests]


# --- the script's own clocks: the weights, the run, a SIGTERM ------------------------------------------

IDENTITY = {"repo": "meituan/DeepSeek-R1-Block-INT8", "revision": "master", "source": "modelscope"}
HINT = "daemonset/deepseek-r1-weights fetches them (kubectl logs daemonset/deepseek-r1-weights)"
# A stand-in for `python -m sglang.bench_serving`: records its pid, takes FAKE_BENCH_SECONDS, then appends a
# result line as the real one does.
FAKE_BENCH = """
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_BENCH_PID"], "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(os.environ.get("FAKE_BENCH_SECONDS", "0")))
with open(args[args.index("--output-file") + 1], "a") as f:
    f.write(RESULT + "\\n")
"""


def test_the_script_knows_the_gates_marker():
    download = ROOT / "pod_scripts" / "download_model.py"
    assert f'MARKER = "{sb.WEIGHTS_MARKER}"' in download.read_text()


def start_script(tmp_path: Path, kube: FakeKube, fake: FakeOpenAI, **env: str) -> subprocess.Popen:
    """The Job's script with a stand-in bench_serving, against the fake API server and the fake Kubernetes API."""
    package = tmp_path / "fake-sglang" / "sglang"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    raw = RAW_043 | {"completed": 20}
    (package / "bench_serving.py").write_text(f"RESULT = {json.dumps(raw)!r}\n" + FAKE_BENCH)
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text(kube.token)
    work = tmp_path / "work"
    args = ["--num-prompts", "20", "--dataset-name", "random", "--dataset-path", f"{work}/dataset.json"]
    args += ["--output-file", f"{work}/result.jsonl"]
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(package.parent),
        "PYTHONUNBUFFERED": "1",
        "BENCH_PYTHON": sys.executable,
        "FAKE_BENCH_PID": str(tmp_path / "bench.pid"),
        "BENCH_BASE_URL": f"http://127.0.0.1:{fake.port}",
        "BENCH_MODEL": "deepseek-r1",
        "BENCH_SLO": json.dumps(SLO),
        "BENCH_REVISION": "1ae4af0433e3",
        "BENCH_GROUP": "deepseek-r1",
        "BENCH_NAMESPACE": "deepseek",
        "BENCH_CONFIGMAP": "deepseek-r1-benchmark",
        "POLL_SECONDS": "0.05",
        "OPENAI_API_KEY": API_KEY,
        "KUBERNETES_API_URL": kube.url,
        "SERVICEACCOUNT_DIR": str(sa),
    }
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--", *args],
        env=base | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_weights_that_do_not_come_end_the_scripts_wait_and_it_says_why(tmp_path):
    """The weights wait is the script's, on its ready clock: before, an init container waited and the Job's
    deadline killed it with nothing in the ConfigMap."""
    model = tmp_path / "model"
    model.mkdir()
    old = IDENTITY | {"revision": "v1"}
    (model / sb.WEIGHTS_MARKER).write_text(json.dumps(old))
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key=API_KEY)) as fake,
        serve_kube(FakeKube(leader_worker_sets=[lws()])) as kube,
    ):
        proc = start_script(
            tmp_path,
            kube,
            fake,
            BENCH_WEIGHTS_DIR=str(model),
            BENCH_WEIGHTS_IDENTITY=json.dumps(IDENTITY),
            BENCH_WEIGHTS_HINT=HINT,
            BENCH_NODE="gpu-node-1",
            READY_TIMEOUT_SECONDS="0.3",
        )
        code, log = finish(proc)
    assert code == 1, log
    assert [p["status"] for p in kube.patches] == ["waiting", "waiting", "error"]
    assert kube.patches[1] == {
        "status": "waiting",
        "revision": "1ae4af0433e3",
        "message": f"waiting for the weights on node gpu-node-1: {model} holds {old}; {HINT}",
    }
    assert kube.patches[2]["message"] == (
        f"the weights were not complete on node gpu-node-1 after 0.3 s: {model} holds {old}; {HINT}"
    )
    # It never got further: no look at the group, no request, no bench_serving.
    assert [path for _, path in kube.requests if "leaderworkersets" in path] == []
    assert fake.requests == [] and not (tmp_path / "bench.pid").exists()


def test_weights_that_come_late_are_waited_for_then_the_group_then_the_run(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key=API_KEY)) as fake,
        serve_kube(FakeKube(leader_worker_sets=[lws()])) as kube,
    ):
        proc = start_script(
            tmp_path,
            kube,
            fake,
            BENCH_WEIGHTS_DIR=str(model),
            BENCH_WEIGHTS_IDENTITY=json.dumps(IDENTITY),
            BENCH_WEIGHTS_HINT=HINT,
            READY_TIMEOUT_SECONDS="60",
        )
        # The stager's last step: the marker, once the files are verified (a different key order is the same).
        wait_for(lambda: len(kube.patches) >= 2)
        (model / sb.WEIGHTS_MARKER).write_text(json.dumps(dict(reversed(IDENTITY.items())) | {"files": 163}))
        code, log = finish(proc)
    assert code == 0, log
    assert [(p["status"], p.get("message")) for p in kube.patches] == [
        ("waiting", "waiting for deepseek-r1 to serve its revision"),
        ("waiting", f"waiting for the weights: {model} has no completion marker yet; {HINT}"),
        ("waiting", "waiting for deepseek-r1 to serve its revision"),
        ("running", None),
        ("done", None),
    ]
    assert f"weights complete: {model} holds {IDENTITY}" in log


def wait_for(condition, seconds: float = 30) -> None:
    import time

    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_the_weights_and_the_group_are_waited_for_on_one_clock(tmp_path):
    """The time the weights took is gone from the group's wait: together they take READY_TIMEOUT_SECONDS."""
    model = tmp_path / "model"
    model.mkdir()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] == 60:
            (model / sb.WEIGHTS_MARKER).write_text(json.dumps(IDENTITY))

    published: list[tuple[str, dict]] = []
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token")
    with serve_kube(FakeKube(leader_worker_sets=[lws(ready=0)])) as kube:
        env = {
            "KUBERNETES_API_URL": kube.url,
            "SERVICEACCOUNT_DIR": str(sa),
            "BENCH_GROUP": "deepseek-r1",
            "BENCH_NAMESPACE": "deepseek",
            "BENCH_BASE_URL": "http://127.0.0.1:9",
            "BENCH_MODEL": "deepseek-r1",
            "BENCH_WEIGHTS_DIR": str(model),
            "BENCH_WEIGHTS_IDENTITY": json.dumps(IDENTITY),
            "READY_TIMEOUT_SECONDS": "100",
            "POLL_SECONDS": "10",
        }
        deadline = sb.ready_deadline(env, clock=lambda: now[0])
        waited = sb.wait_for_weights(
            env, lambda status, **data: published.append((status, data)), deadline, sleep, lambda: now[0]
        )
        assert (waited, now[0]) == (True, 60)
        assert published == [("waiting", {"message": f"waiting for the weights: {model} has no completion marker yet"})]
        with pytest.raises(sb.BenchmarkError) as info:
            sb.wait_until_serving(env, sb.KubeApi(env), sleep, lambda: now[0], deadline=deadline)
    # 40 s left for the group, not another 100.
    assert now[0] == 100
    assert str(info.value) == "not serving after 100 s: leaderworkerset deepseek-r1: 0 of 1 groups ready, 1 updated"


def test_a_run_longer_than_its_time_is_stopped_by_the_script_which_says_so(tmp_path):
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key=API_KEY)) as fake,
        serve_kube(FakeKube(leader_worker_sets=[lws()])) as kube,
    ):
        proc = start_script(tmp_path, kube, fake, FAKE_BENCH_SECONDS="120", BENCH_RUN_TIMEOUT_SECONDS="0.5")
        code, log = finish(proc)
    assert code == 1, log
    assert [p["status"] for p in kube.patches] == ["waiting", "running", "error"]
    assert kube.patches[-1]["message"] == (
        "bench_serving did not finish within 0.5 s and was stopped (its output is above)"
    )
    # bench_serving itself was ended, not left running in the pod.
    pid = int((tmp_path / "bench.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_sigterm_is_published_as_the_reason(tmp_path):
    """The Job's deadline (a pod that started too late) or a deletion: the kubelet's SIGTERM ends the wait and
    is written down, instead of being ignored by PID 1 until the SIGKILL."""
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key=API_KEY)) as fake,
        serve_kube(FakeKube(leader_worker_sets=[lws(ready=0)])) as kube,
    ):
        proc = start_script(tmp_path, kube, fake, READY_TIMEOUT_SECONDS="600")
        wait_for(lambda: any("leaderworkersets" in path for _, path in kube.requests))
        proc.send_signal(signal.SIGTERM)
        code, log = finish(proc)
    assert code == 1, log
    assert [p["status"] for p in kube.patches] == ["waiting", "error"]
    assert kube.config_maps["deepseek/deepseek-r1-benchmark"]["message"] == (
        "stopped by SIGTERM: the Job's activeDeadlineSeconds passed (the pod waited too long to be scheduled or to "
        "pull its image) or the Job was deleted"
    )


def test_a_sigterm_does_not_overwrite_a_newer_jobs_state(tmp_path):
    """A new revision's Job replaces this one: its pod already wrote the ConfigMap, which stays as it wrote it."""
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key=API_KEY)) as fake,
        serve_kube(FakeKube(leader_worker_sets=[lws(ready=0)])) as kube,
    ):
        proc = start_script(tmp_path, kube, fake, READY_TIMEOUT_SECONDS="600")
        wait_for(lambda: any("leaderworkersets" in path for _, path in kube.requests))
        newer = {"status": "waiting", "revision": "newer"}
        kube.config_maps["deepseek/deepseek-r1-benchmark"] = dict(newer)
        proc.send_signal(signal.SIGTERM)
        code, log = finish(proc)
    assert code == 1, log
    assert [p["status"] for p in kube.patches] == ["waiting"]
    assert kube.config_maps["deepseek/deepseek-r1-benchmark"] == newer
    assert "ConfigMap deepseek/deepseek-r1-benchmark holds another revision now: not writing error" in log


# --- the real bench_serving ----------------------------------------------------------------------------


def _top_level_imports(module: Path) -> set[str]:
    """The modules a file imports when it is imported (its module-level import statements)."""
    names: set[str] = set()
    for n in ast.parse(module.read_text()).body:
        if isinstance(n, ast.Import):
            names |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module:
            names.add(n.module)
    return names


def imports_torch(wheel_dir: Path) -> bool:
    """Whether ``import sglang`` of the release installed in wheel_dir imports torch: from 0.4.3.post3 on,
    ``sglang/utils.py`` imports ``sglang.srt.utils`` at module level (0.4.3.post2: inside a function), and that
    module imports torch."""
    sglang = wheel_dir / "sglang"
    return "sglang.srt.utils" in _top_level_imports(sglang / "utils.py") and "torch" in _top_level_imports(
        sglang / "srt" / "utils.py"
    )


def bench_python(release: str) -> tuple[str, dict[str, str]]:
    """The interpreter with bench_serving's dependencies, and the PYTHONPATH holding the release's sglang
    wheel, then (only for a release whose ``import sglang`` imports torch) the stand-in torch and triton.
    Both installed by .ci/run; SGLANG_BENCH_PYTHON and SGLANG_BENCH_PATH (a directory holding
    ``<release>/sglang``) point elsewhere."""
    python = os.environ.get("SGLANG_BENCH_PYTHON") or str(BENCH_VENV / "bin" / "python")
    wheel_dir = Path(os.environ.get("SGLANG_BENCH_PATH") or BENCH_VENV / "sglang") / release
    if not Path(python).exists() or not (wheel_dir / "sglang" / "bench_serving.py").exists():
        unavailable(
            Capability.BENCH,
            f"bench_serving of sglang {release} is not installed: its dependencies go into {BENCH_VENV} and the "
            f"wheel into {BENCH_VENV}/sglang/{release} (or set SGLANG_BENCH_PYTHON and SGLANG_BENCH_PATH)",
        )
    path = [str(wheel_dir), *([str(TORCH_STUB)] if imports_torch(wheel_dir) else [])]
    return python, {"PYTHONPATH": os.pathsep.join(path)}


def tokenizer_dir(path: Path) -> Path:
    """A word-level tokenizer that knows every word the random dataset and the fake answers use."""
    words = list(dict.fromkeys([*sb.WORDS, *(f"t{i}" for i in range(256))]))
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {w: i for i, w in enumerate([*specials, *words])}
    added = [
        {
            "id": i,
            "content": w,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, w in enumerate(specials)
    ]
    path.mkdir(parents=True)
    (path / "tokenizer.json").write_text(
        json.dumps(
            {
                "version": "1.0",
                "truncation": None,
                "padding": None,
                "added_tokens": added,
                "normalizer": None,
                "pre_tokenizer": {"type": "Whitespace"},
                "post_processor": None,
                "decoder": None,
                "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
            }
        )
    )
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "unk_token": "<unk>",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "model_max_length": 1_000_000,
            }
        )
    )
    return path


def run_benchmark(
    tmp_path: Path, release: str, slo: dict, fake: FakeOpenAI, kube: FakeKube, ready_timeout: str = "60"
) -> tuple[subprocess.CompletedProcess, list[str]]:
    python, extra_env = bench_python(release)
    g = prod_group(numPrompts=20, randomInputLen=16, randomOutputLen=8, maxConcurrency=4)
    assert g.benchmark is not None
    base = f"http://127.0.0.1:{fake.port}"
    # The Job's exact arguments, with its paths moved under tmp_path.
    work, tokenizer = tmp_path / "work", tokenizer_dir(tmp_path / "model")
    args = [
        a.replace(benchmark.WORK_DIR, str(work)).replace(g.model_path, str(tokenizer))
        for a in benchmark.bench_args(g, g.benchmark, base, "deepseek-r1")
    ]
    sa = tmp_path / "sa"
    sa.mkdir(exist_ok=True)
    (sa / "token").write_text(kube.token)
    env = extra_env | {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "BENCH_BASE_URL": base,
        "BENCH_MODEL": "deepseek-r1",
        "BENCH_SLO": json.dumps(slo),
        "BENCH_REVISION": "1ae4af0433e3",
        "BENCH_GROUP": "deepseek-r1",
        "BENCH_NAMESPACE": "deepseek",
        "BENCH_CONFIGMAP": "deepseek-r1-benchmark",
        "READY_TIMEOUT_SECONDS": ready_timeout,
        "POLL_SECONDS": "0.05",
        "OPENAI_API_KEY": API_KEY,
        "KUBERNETES_API_URL": kube.url,
        "SERVICEACCOUNT_DIR": str(sa),
    }
    proc = subprocess.run(
        [python, str(SCRIPT), "--", *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return proc, args


def test_the_runs_cover_every_committed_stacks_and_every_sets_release():
    from tools.bench_serving_releases import NOT_RUN, bench_releases, set_releases, stack_releases

    assert [release for _, release in BENCH_RUNS] == bench_releases()
    assert set_releases() == {"current": "0.5.23", "reference": "0.4.3.post2"}
    assert stack_releases() == {"dev": "0.5.23", "prod": "0.4.4"}
    # Every pinned release is run, or read from source for the reason NOT_RUN gives (docs/benchmark-slo.md,
    # "Tested how"); the example stacks' too.
    pinned = set(stack_releases().values()) | set(set_releases().values())
    pinned |= {_stack_release(s) for s in ("pd-h200", "deepseek-h200")}
    assert pinned - set(bench_releases()) == set(NOT_RUN) == {"0.5.23"}


@pytest.mark.parametrize(("stack", "release"), BENCH_RUNS)
def test_bench_serving_of_each_stacks_release_against_a_fake_server(tmp_path, stack, release):
    # The group becomes ready on the third look: the old group is still serving, then the new one loads.
    states = [lws(updated=0), lws(ready=0, total=1, updated=1), lws()]
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key=API_KEY, first_token_delay=0.02)) as fake,
        serve_kube(FakeKube(leader_worker_sets=states)) as kube,
    ):
        slo = SLO | {"ttftP99Seconds": 5.0, "minRequestThroughput": 0.1}
        proc, args = run_benchmark(tmp_path, release, slo, fake, kube)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "waiting: leaderworkerset deepseek-r1: 1 of 1 groups ready, 0 updated" in log
    assert "waiting: leaderworkerset deepseek-r1: 0 of 1 groups ready, 1 updated" in log
    # 0.4.4 ran on the stand-in torch (its `import sglang` needs one), 0.4.3.post2 without.
    assert (str(TORCH_STUB) in bench_python(release)[1]["PYTHONPATH"]) is (release == "0.4.4")
    completions = [body or {} for _, path, body in fake.requests if path == "/v1/completions"]
    # bench_serving: one warm-up request (at most 32 tokens), then the 20, streamed, the key sent.
    assert len(completions) == 21
    assert all(
        set(body) == {"model", "prompt", "temperature", "best_of", "max_tokens", "stream", "ignore_eos"}
        for body in completions
    )
    assert {(b["model"], b["max_tokens"], b["stream"], b["ignore_eos"], b["temperature"]) for b in completions} == {
        ("deepseek-r1", 8, True, True, 0.0)
    }
    sent = {(path, auth) for (_, path, _), auth in zip(fake.requests, fake.auth, strict=True)}
    # Our ready check and every completion carry the key. 0.4.3.post2 posts /flush_cache without it (SGLang
    # answers 401 with --api-key set, and bench_serving ignores the answer); 0.4.4 sends it there, and at the
    # end reads /get_server_info without it (the 401 is JSON, read as no accept length). With --model given
    # it asks for nothing else.
    key = f"Bearer {API_KEY}"
    around: dict[str, set[tuple[str, str | None]]] = {
        "0.4.3.post2": {("/flush_cache", None)},
        "0.4.4": {("/flush_cache", key), ("/get_server_info", None)},
    }
    assert sent == {("/v1/models", key), ("/v1/completions", key)} | around[release]
    assert [path for _, path, _ in fake.requests].count("/flush_cache") == 1
    assert [path for _, path, _ in fake.requests][-1] == (
        "/get_server_info" if release == "0.4.4" else "/v1/completions"
    )
    # The ConfigMap: cleared and waiting, running, then the result.
    data = kube.config_maps["deepseek/deepseek-r1-benchmark"]
    assert [p["status"] for p in kube.patches] == ["waiting", "running", "done"]
    assert kube.patches[0] == {
        "status": "waiting",
        "revision": "1ae4af0433e3",
        "message": "waiting for deepseek-r1 to serve its revision",
        "passed": None,
        "startedAt": None,
        "result.json": None,
        "summary.txt": None,
    }
    result = json.loads(data["result.json"])
    assert (data["status"], data["passed"], data["revision"]) == ("done", "true", "1ae4af0433e3")
    assert data["summary.txt"] in log
    assert (result["completed"], result["failed"], result["passed"], result["benchServing"]) == (
        20,
        0,
        True,
        release,
    )
    assert result["workload"] == {
        "backend": "sglang-oai",
        "dataset": "random",
        "numPrompts": 20,
        "randomInputLen": 16,
        "randomOutputLen": 8,
        "randomRangeRatio": 1.0,
        "requestRate": "inf",
        "maxConcurrency": 4,
    }
    # The fake server waits 20 ms before the first token and 1 ms between tokens.
    assert 20 <= result["ttftMs"]["p99"] < 5000 and 0 < result["itlMs"]["median"] < 1000
    assert result["throughput"]["requestsPerSecond"] > 0.1
    assert [c["name"] for c in result["slo"]["checks"]] == [
        "allRequestsSucceeded",
        "ttftP99Seconds",
        "minRequestThroughput",
    ]
    # Our generated prompts were read by bench_serving: one per request, as it wrote them.
    assert len(json.loads((tmp_path / "work" / "dataset.json").read_text())) == 20
    assert args[args.index("--dataset-path") + 1] == str(tmp_path / "work" / "dataset.json")


@pytest.mark.parametrize(("stack", "release"), BENCH_RUNS)
def test_a_missed_slo_is_published_as_failed_and_ends_the_job_cleanly(tmp_path, stack, release):
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key=API_KEY, first_token_delay=0.02)) as fake,
        serve_kube(FakeKube(leader_worker_sets=[lws()])) as kube,
    ):
        proc, _ = run_benchmark(tmp_path, release, SLO | {"ttftP99Seconds": 0.001}, fake, kube)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = kube.config_maps["deepseek/deepseek-r1-benchmark"]
    assert (data["status"], data["passed"]) == ("done", "false")
    assert "SLO FAILED: deepseek-r1 revision 1ae4af0433e3" in proc.stdout
    assert "  FAIL  TTFT p99: " in proc.stdout and " ms <= 1.0 ms" in proc.stdout


@pytest.mark.parametrize(("stack", "release"), BENCH_RUNS)
def test_a_wrong_key_is_an_error_the_job_reports(tmp_path, stack, release):
    with (
        serve_openai(FakeOpenAI(model="deepseek-r1", api_key="another-key")) as fake,
        serve_kube(FakeKube(leader_worker_sets=[lws()])) as kube,
    ):
        proc, _ = run_benchmark(tmp_path, release, SLO, fake, kube, ready_timeout="1")
    assert proc.returncode == 1
    data = kube.config_maps["deepseek/deepseek-r1-benchmark"]
    assert data["status"] == "error"
    # The ready check already fails on the key: it lists no models, and the wait times out naming what it saw.
    assert data["message"].startswith("not serving after 1 s: http://127.0.0.1:")
    assert "HTTP Error 401" in data["message"]


def test_the_scripts_parse_as_the_images_python():
    # The SGLang 0.4.3.post2 image runs Python 3.10: the scripts it runs (the benchmark, the gate) parse there.
    import ast

    for script in (SCRIPT, ROOT / "pod_scripts" / "download_model.py"):
        tree = ast.parse(script.read_text(), feature_version=(3, 10))
        # datetime.UTC is 3.11 too, and the parser does not know.
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "UTC"], script.name
