"""ServingBenchmark: SGLang's own ``bench_serving`` against an inference group (or anything speaking its API,
such as a gateway) each time the group serves a new revision, judged against the stack's SLO. A disaggregated
service gets one benchmark, through its gateway, once both roles serve the service's revision.

The Job runs in the group's SGLang image, so the benchmark is the release the group serves, with the model's
own tokenizer read from the model volume (nothing is downloaded). Its name carries a hash of everything it
measures (the group's revision, the workload, the SLO, the image): a new revision is a new Job, and an
unchanged stack does not run it again. It writes its result into the ConfigMap ``<group>-benchmark``, which
the component declares without data and reads back: ``pulumi up --refresh`` (or ``pulumi refresh`` before an
up) brings the verdict into the ``result`` output. Why a ConfigMap and not a Pushgateway: docs/benchmark-slo.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .. import pod_scripts
from ..config.benchmark import BENCH_RESOURCES, Benchmark
from ..config.errors import refusal
from ..config.monitoring import Slo
from ..config.stack import MODEL_VOLUME, InferenceGroup
from ..render.k8s import Spec, image_skips, labels, skip_annotations, skip_await
from ..render.sglang_pods import API_CLIENT_LABEL, API_KEY_SECRET_KEY, model_volume
from ..rules.benchmark import check_group_benchmark
from .k8s import child_opts, meta, workload_rbac

SCRIPT = pod_scripts.DIRECTORY / "serving_benchmark.py"
SCRIPT_DIR = "/opt/sglang-platform-benchmark"
SCRIPT_VOLUME = "benchmark-script"
WORK_VOLUME = "benchmark-work"
WORK_DIR = "/tmp/bench"
# bench_serving needs no root: it reads the image's packages and the model's tokenizer, and writes to /tmp.
BENCH_UID = 65532
# Time the run itself may take once the group serves (on top of the wait for it); the script stops
# bench_serving after it.
RUN_SECONDS = 2 * 3600
# The Job's deadline counts from its start, the script's clocks from the script's: this is the time the pod
# may take to be scheduled and to pull the SGLang image (usually already on the GPU node, up to tens of GiB
# when not) before the script's own timeouts begin. Beyond the ready timeout and the run time, so that the
# script, which publishes why, ends a wait or a run that is too long; the Job's deadline only ends a pod that
# started too late (the script still publishes the SIGTERM, docs/benchmark-slo.md).
START_MARGIN_SECONDS = 30 * 60


@dataclass
class ServingBenchmarkArgs:
    config: Benchmark
    # The pass marks (monitoring.slo): TTFT/ITL/end-to-end p99 and the request throughput.
    slo: Slo
    # The group benchmarked: its model volume holds the tokenizer, its LeaderWorkerSet is waited for. A
    # disaggregated service (``disaggregation`` set): both roles' LeaderWorkerSets are waited for, and base_url
    # must be its gateway (neither role serves a request alone).
    group: InferenceGroup
    namespace: pulumi.Input[str]
    # The group's SGLang image: bench_serving of the same release.
    image: pulumi.Input[str]
    # Where requests go, as bench_serving's --base-url (no /v1): the model's gateway when one fronts the group
    # (what clients call), else the group's Service. Either way the Job waits for the group's revision first.
    base_url: pulumi.Input[str]
    served_model_name: pulumi.Input[str]
    # What the group serves (SglangInferenceGroup.revision; a disaggregated service's
    # SglangDisaggregatedService.revision, both roles'): a change runs the benchmark again.
    revision: pulumi.Input[str]
    # The group's API-key Secret (bench_serving sends it as OPENAI_API_KEY); None: no key.
    api_key_secret_name: pulumi.Input[str | None] = None
    # What ModelCache's wait-for-weights gate waits for (ModelCache.gate): the script waits for it itself, on the
    # clock of its ready timeout, rather than in an init container the Job's deadline would also count. And
    # the nodes that hold the weights (hostPath).
    weights_gate: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    depends_on: Sequence[pulumi.Resource] = ()


class ServingBenchmark(pulumi.ComponentResource):
    job_name: pulumi.Output[str]
    config_map_name: pulumi.Output[str]
    # Where the requests go (bench_serving's --base-url).
    base_url: pulumi.Output[str]
    # What the current Job measures, and the ConfigMap's content as of the last refresh.
    revision: pulumi.Output[str]
    status: pulumi.Output[str | None]
    passed: pulumi.Output[bool | None]
    result: pulumi.Output[dict | None]

    def __init__(self, name: str, args: ServingBenchmarkArgs, opts: pulumi.ResourceOptions | None = None):
        g = args.group
        # Before registering: a refused component leaves nothing behind, not even itself.
        _refuse_invalid(name, g, args.config)
        super().__init__("sglang-platform:index:ServingBenchmark", name, None, opts)
        child = child_opts(self, opts, *args.depends_on)
        ns = args.namespace
        base = bench_labels(g)
        results_name, account = results_config_map_name(g), f"{g.name}-benchmark"

        k8s.core.v1.ConfigMap(
            f"{name}-script",
            metadata=meta(f"{g.name}-benchmark-script", ns, base),
            data={SCRIPT.name: SCRIPT.read_text()},
            opts=child,
        )
        # Declared without data: the Job writes it, and a later `pulumi up` must neither reset it nor fight the
        # Job over its keys; a refresh reads it back into the outputs below.
        results = k8s.core.v1.ConfigMap(
            f"{name}-results",
            metadata=meta(results_name, ns, base),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["data"])),
        )
        workload_rbac(name, account, ns, base, role_rules(g), child)
        # Nothing connects to the benchmark's pod; it calls the group (as a labelled API client) and the API server.
        policy: Spec = {"podSelector": {"matchLabels": base}, "policyTypes": ["Ingress"], "ingress": []}
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=meta(f"{g.name}-benchmark", ns, base), spec=policy, opts=child
        )
        inputs = pulumi.Output.all(
            args.image, args.base_url, args.served_model_name, args.revision, args.api_key_secret_name, ns
        )
        job = inputs.apply(
            lambda v: job_manifest(
                g,
                args.config,
                args.slo,
                image=v[0],
                base_url=v[1],
                model=v[2],
                revision=v[3],
                api_key_secret=v[4],
                namespace=v[5],
                weights_gate=args.weights_gate,
                node_selector=args.node_selector,
            )
        )
        k8s.batch.v1.Job(
            f"{name}-job",
            metadata=job.apply(lambda j: j["metadata"]),
            spec=job.apply(lambda j: j["spec"]),
            opts=child,
        )

        self.job_name = job.apply(lambda j: j["metadata"]["name"])
        self.config_map_name = pulumi.Output.from_input(results_name)
        self.base_url = pulumi.Output.from_input(args.base_url)
        self.revision = pulumi.Output.from_input(args.revision)
        read = results.data.apply(read_results)
        self.status = read.apply(lambda r: r[0])
        self.passed = read.apply(lambda r: r[1])
        self.result = read.apply(lambda r: r[2])
        self.register_outputs(
            {
                "job_name": self.job_name,
                "config_map_name": self.config_map_name,
                "base_url": self.base_url,
                "revision": self.revision,
                "status": self.status,
                "passed": self.passed,
                "result": self.result,
            }
        )


def read_results(data: Mapping[str, str] | None) -> tuple[str | None, bool | None, dict | None]:
    """(status, passed, result) from the results ConfigMap's data as the Job leaves it."""
    data = data or {}
    passed = {"true": True, "false": False}.get(data.get("passed", ""))
    return data.get("status"), passed, json.loads(data["result.json"]) if data.get("result.json") else None


def _refuse_invalid(name: str, g: InferenceGroup, config: Benchmark) -> None:
    problems = check_group_benchmark(g.model_copy(update={"benchmark": config}))
    if problems:
        raise ValueError(refusal(f"ServingBenchmark {name!r}: invalid config", [p.local for p in problems]))


def bench_labels(g: InferenceGroup) -> dict[str, str]:
    return labels("sglang-benchmark", instance=g.name, component="benchmark")


def results_config_map_name(g: InferenceGroup) -> str:
    return f"{g.name}-benchmark"


def leader_worker_sets(g: InferenceGroup) -> list[str]:
    """What must serve the revision before the run: the group's LeaderWorkerSet, or both roles' of a
    disaggregated service (``<service>-prefill``, ``<service>-decode``)."""
    roles = [r.name for r in g.roles.values()] if g.disaggregation is not None else []
    return roles or [g.name]


def placement(g: InferenceGroup) -> InferenceGroup:
    """Whose nodeSelector and tolerations the Job takes (it reads the tokenizer from the model volume, which on
    a host path only the group's nodes hold): the group's, or a disaggregated service's decode role's."""
    return g.roles.get("decode", g) if g.disaggregation is not None else g


def role_rules(g: InferenceGroup) -> Spec:
    """Read its group's status, write its own result: nothing else, and only those objects by name."""
    return [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [results_config_map_name(g)],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["leaderworkerset.x-k8s.io"],
            "resources": ["leaderworkersets"],
            "resourceNames": leader_worker_sets(g),
            "verbs": ["get"],
        },
    ]


def _num(value: float) -> str:
    return format(value, "g")


def dataset_path(g: InferenceGroup, config: Benchmark) -> str:
    if config.dataset == "sharegpt" and config.dataset_path:
        return f"{g.model_volume.mount_path.rstrip('/')}/{config.dataset_path}"
    return f"{WORK_DIR}/dataset.json"


def bench_args(g: InferenceGroup, config: Benchmark, base_url: str, model: str) -> list[str]:
    """The exact arguments of ``python -m sglang.bench_serving`` (the same in 0.4.3.post2 and 0.5.x)."""
    args = [
        # The OpenAI completions API the platform's clients use (and a gateway serves), streamed.
        "--backend",
        "sglang-oai",
        "--base-url",
        base_url,
        "--model",
        model,
        # The model's own tokenizer from the volume: prompt lengths in its tokens, and no hub download.
        "--tokenizer",
        g.model_path,
        "--dataset-name",
        config.dataset,
        "--dataset-path",
        dataset_path(g, config),
        "--num-prompts",
        str(config.num_prompts),
    ]
    if config.dataset == "random":
        args += [
            "--random-input-len",
            str(config.random_input_len),
            "--random-output-len",
            str(config.random_output_len),
            "--random-range-ratio",
            _num(config.random_range_ratio),
        ]
    args += ["--request-rate", "inf" if config.request_rate is None else _num(config.request_rate)]
    if config.max_concurrency is not None:
        args += ["--max-concurrency", str(config.max_concurrency)]
    return [*args, "--seed", str(config.seed), "--output-file", f"{WORK_DIR}/result.jsonl", "--disable-tqdm"]


def slo_targets(slo: Slo) -> dict[str, float | None]:
    return {
        "ttftP99Seconds": slo.ttft_p99_seconds,
        "itlP99Seconds": slo.itl_p99_seconds,
        "e2eP99Seconds": slo.e2e_p99_seconds,
        "minRequestThroughput": slo.min_request_throughput,
    }


def job_manifest(
    g: InferenceGroup,
    config: Benchmark,
    slo: Slo,
    *,
    image: str,
    base_url: str,
    model: str,
    revision: str,
    api_key_secret: str | None,
    namespace: str,
    weights_gate: Mapping[str, str] | None = None,
    node_selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Job's metadata and spec; its name ends in a hash of the spec, so anything it measures that changes
    (revision, workload, SLO, image, target) makes a new Job."""
    env = {
        "BENCH_BASE_URL": base_url,
        "BENCH_MODEL": model,
        "BENCH_SLO": json.dumps(slo_targets(slo), sort_keys=True),
        "BENCH_REVISION": revision,
        "BENCH_GROUP": g.name,
        "BENCH_NAMESPACE": namespace,
        "BENCH_CONFIGMAP": results_config_map_name(g),
        # The waits for the weights and the group share this clock; bench_serving is stopped after the second.
        "READY_TIMEOUT_SECONDS": str(config.ready_timeout_minutes * 60),
        "BENCH_RUN_TIMEOUT_SECONDS": str(RUN_SECONDS),
        # bench_serving and transformers: the tokenizer is local; never try a hub.
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HOME": WORK_DIR,
        "PYTHONUNBUFFERED": "1",
    }
    if (waited := leader_worker_sets(g)) != [g.name]:
        # A disaggregated service: both roles must serve the revision (BENCH_GROUP names the service).
        env["BENCH_LEADERWORKERSETS"] = ",".join(waited)
    if weights_gate:
        env |= {
            "BENCH_WEIGHTS_DIR": weights_gate["MODEL_DIR"],
            "BENCH_WEIGHTS_IDENTITY": weights_gate["MODEL_IDENTITY"],
            "BENCH_WEIGHTS_HINT": weights_gate.get("WAIT_HINT", ""),
        }
    container_env: list[dict] = [{"name": k, "value": v} for k, v in env.items()]
    if weights_gate:
        # Which node's copy it waits for, in the message it publishes (on a host path each node has its own).
        container_env.append({"name": "BENCH_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    if api_key_secret:
        container_env.append(
            {
                "name": "OPENAI_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": API_KEY_SECRET_KEY}},
            }
        )
    container = {
        "name": "bench-serving",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", f"{SCRIPT_DIR}/{SCRIPT.name}", "--", *bench_args(g, config, base_url, model)],
        "env": container_env,
        "resources": {"requests": dict(BENCH_RESOURCES), "limits": dict(BENCH_RESOURCES)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": MODEL_VOLUME, "mountPath": g.model_volume.mount_path, "readOnly": True},
            {"name": SCRIPT_VOLUME, "mountPath": SCRIPT_DIR, "readOnly": True},
            {"name": WORK_VOLUME, "mountPath": WORK_DIR},
        ],
    }
    volume = model_volume(g)
    if "persistentVolumeClaim" in volume:
        volume = {**volume, "persistentVolumeClaim": {**volume["persistentVolumeClaim"], "readOnly": True}}
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": f"{g.name}-benchmark",
        # The token reads the group's status and writes the result (the Role allows nothing else).
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsNonRoot": True,
            "runAsUser": BENCH_UID,
            "runAsGroup": BENCH_UID,
        },
        "containers": [container],
        "volumes": [
            volume,
            {"name": SCRIPT_VOLUME, "configMap": {"name": f"{g.name}-benchmark-script", "defaultMode": 0o444}},
            {"name": WORK_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    # Where the model volume is: on a host path only nodes holding the weights have the tokenizer.
    placed = placement(g)
    if selector := dict(placed.node_selector) | dict(node_selector or {}):
        pod["nodeSelector"] = selector
    if placed.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in placed.tolerations]
    template_labels = bench_labels(g) | {API_CLIENT_LABEL: "true"}
    spec: Spec = {
        # One retry for a crash; a failed SLO is a result (exit 0), not a reason to run again.
        "backoffLimit": 1,
        # Longer than the script's own clocks (START_MARGIN_SECONDS): the script ends a long run and says why.
        "activeDeadlineSeconds": config.ready_timeout_minutes * 60 + RUN_SECONDS + START_MARGIN_SECONDS,
        "template": {"metadata": {"labels": template_labels}, "spec": pod},
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    annotations = skip_await(skip_annotations(bench_skips(image, bool(api_key_secret))))
    annotations["sglang-platform.io/revision"] = revision
    metadata = meta(f"{g.name}-bench-{digest}", namespace, bench_labels(g), annotations)
    return {"metadata": metadata, "spec": spec}


def bench_skips(image: str, api_key: bool) -> list[tuple[str, str]]:
    skips = [
        *image_skips(image, "sglangImage"),
        (
            "CKV_K8S_38",
            "the token reads the group's LeaderWorkerSet status and writes the result ConfigMap; its Role grants "
            "get on those two objects by name and nothing else",
        ),
    ]
    if api_key:
        skips.append(
            (
                "CKV_K8S_35",
                "bench_serving reads the API key only from OPENAI_API_KEY; it comes from the group's Secret by "
                "secretKeyRef and never appears in the spec",
            )
        )
    return skips
