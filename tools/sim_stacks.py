"""What the e2e suite changes on top of the committed stacks, and why: only what the simulated cluster cannot
serve (docs/real-engine.md shows readme_block(), kept current by a test).
Everything else is the stack as committed. tools/bench_preview.py deploys the same."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

# The secrets `pulumi up` needs (pulumi config set --secret); test values.
SECRETS: dict[str, dict[str, str]] = {
    "dev": {"webuiSecretKey": "e2e-webui-secret-0123456789abcdef", "grafanaAdminPassword": "e2e-grafana"},
    "prod": {
        "apiKey": "e2e-api-key-0123456789abcdef",
        "webuiSecretKey": "e2e-webui-secret-0123456789abcdef",
        "grafanaAdminPassword": "e2e-grafana",
    },
}
SECRETS["pd-h200"] = SECRETS["prod"]

# Sandbox start options per stack: three 8-GPU nodes (one prod group is two whole nodes: 128 CPU, 1Ti, 4 rdma/ib
# per pod) and a pool of class-less volumes for the claims without a StorageClass.
# The simulated nodes carry what GPU feature discovery and the device plugin put on an 8 x A800 node: the labels the
# live checks read, and nvidia.com/gpu.present, which the weights-staging DaemonSet and the pods that wait for it
# select. Their CPU and memory stay above prod's gpuNodes (the sandbox's 192 CPU, 2Ti): in the simulation every
# other pod (the add-ons' controllers, Prometheus, the gateway, the UI) runs on these nodes too, where a real
# cluster keeps them on CPU nodes.
GFD_LABELS = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-A800-SXM4-80GB",
    "nvidia.com/gpu.memory": "81920",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0",
    # GFD's driver label (the live driver check reads it): an R580 driver runs every image line the stacks pin.
    "nvidia.com/cuda.driver-version.full": "580.95.05",
}
GFD = ("--node-labels", ",".join(f"{k}={v}" for k, v in GFD_LABELS.items()))
# Nodes exactly as prod's gpuNodes declares them (128 CPU, 2000Gi), for the live checks' room arithmetic.
NODE_SHAPE = ("--cpu", "128", "--memory", "2000Gi", *GFD)
SIM = {
    "dev": ("--nodes", "3", "--pvs", "6", "--pv-size", "100Gi", *GFD),
    "prod": ("--nodes", "3", "--pvs", "4", "--pv-size", "300Gi", *GFD),
    # The disaggregated example: one 8 x H200 node per role, a third for the rest.
    "pd-h200": (
        "--nodes",
        "3",
        "--pvs",
        "4",
        "--pv-size",
        "300Gi",
        "--node-labels",
        ",".join(
            f"{k}={v}"
            for k, v in (
                GFD_LABELS | {"nvidia.com/gpu.product": "NVIDIA-H200", "nvidia.com/gpu.memory": "143771"}
            ).items()
        ),
    ),
}
# The simulation's kube-apiserver (tools/simulation/binaries.py pins v1.36.3).
SIM_KUBERNETES = "1.36.3"
# prod's Open WebUI claim asks for StorageClass nfs-client: the e2e cluster provides it (expandable, so a growth
# of the claim is an in-place update) with two volumes of that class; no provisioner runs in the simulation.
NFS_CLIENT: list[dict[str, Any]] = [
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "nfs-client"},
        # No provisioner runs in the simulation: claims bind to the volumes below.
        "provisioner": "sglang-sim.invalid/none",
        "allowVolumeExpansion": True,
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "Immediate",
    },
    *[
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"nfs-client-{i}"},
            "spec": {
                "capacity": {"storage": "500Gi"},
                "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "nfs-client",
                "hostPath": {"path": f"/tmp/sglang-e2e-nfs-client-{i}"},
            },
        }
        for i in range(2)
    ],
]


# When an override applies, judged on the stack's validated configuration (so `tools/sandbox.py up` applies the same
# rules to any stack file as the e2e suite to the committed ones).
def _always(cfg: Any) -> bool:
    return True


def _unsupported_here(cfg: Any) -> bool:
    """The compatibility rules would refuse one of the stack's add-on releases on the simulation's Kubernetes."""
    from sglang_platform.rules.compat import check_addon_kubernetes, pinned_addons

    return any(check_addon_kubernetes(a, v, SIM_KUBERNETES)[0] for a, v in pinned_addons(cfg))


# (stack key path, value, applies, why). Paths are dotted stack keys without the project prefix.
OVERRIDES: list[tuple[str, Any, Any, str]] = [
    (
        "chartMirror",
        "<chart mirror>",
        _always,
        "the pinned charts, unpacked (no chart repository is reachable from the simulation)",
    ),
    (
        "versions.kubernetes",
        SIM_KUBERNETES,
        _always,
        "the simulation's kube-apiserver is v1.36.3, and the live check at preview refuses a versions.kubernetes of "
        "another minor (prod declares the reference's 1.30.6, dev and pd-h200 leave the BOM's 1.35.8)",
    ),
    (
        "preflight.compatibility",
        False,
        _unsupported_here,
        "on Kubernetes 1.36 the compatibility rules refuse an add-on release not tested there (prod's GPU Operator "
        "v24.9.1: up to 1.31); false makes it a warning, printed at preview",
    ),
    (
        "lws.mode",
        "present",
        lambda cfg: cfg.lws.mode == "install",
        "the lws 0.10.0 chart has no value that turns off its Service-backed admission webhooks (nothing serves "
        "them: kwok runs no containers); the simulation runs the real LWS v0.10.0 controller and its webhooks on "
        "127.0.0.1 instead. The lws release itself is previewed (pulumi preview of the committed stack)",
    ),
    (
        "keda.values",
        {"webhooks": {"enabled": False}, "metricsServer": {"enabled": False}},
        lambda cfg: cfg.keda.mode == "install",
        "KEDA's admission webhook and its external-metrics APIService are Service-backed",
    ),
    (
        "monitoring.values",
        {"prometheusOperator": {"admissionWebhooks": {"enabled": False}, "tls": {"enabled": False}}},
        lambda cfg: cfg.monitoring.enabled,
        "the Prometheus operator's admission webhooks are Service-backed; its TLS secret comes from their hook Job",
    ),
    (
        "volcano.values",
        {"custom": {"admission_enable": False}},
        lambda cfg: cfg.volcano.mode == "install",
        "Volcano's admission webhooks (every pod, every queue) are Service-backed",
    ),
]
# The stacks the e2e suite deploys (docs/real-engine.md lists which override each gets).
E2E_STACKS = ("dev", "prod", "pd-h200")


def _config(values: dict[str, Any]) -> Any:
    from sglang_platform.config import validate
    from sglang_platform.config.loader import SECRET_KEYS

    return validate(values, frozenset(SECRET_KEYS))


def committed(stack: str) -> dict[str, Any]:
    """The sglang-platform keys of Pulumi.<stack>.yaml (or examples/stacks/) as committed, without the prefix."""
    from tools.harness import stack_path

    data = yaml.safe_load(stack_path(stack).read_text())["config"]
    return {k.split(":", 1)[1]: v for k, v in data.items()}


# What a preview of the committed stacks already needs on the simulation (the charts it resolves, the version the
# live checks compare); the rest only matters once the objects exist.
PREVIEW_KEYS = (
    "chartMirror",
    "versions.kubernetes",
    "versions.kedaChart",
    "versions.volcanoChart",
    "preflight.compatibility",
)


def overrides(stack: str, charts: Path, preview_only: bool = False) -> dict[str, Any]:
    """The stack keys to merge into a committed Pulumi.<stack>.yaml (top-level keys, values deep-merged by the
    caller); ``preview_only``: only those a preview of the committed stack needs."""
    return overrides_for(committed(stack), charts, preview_only)


def applicable(values: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(path, value, why) of each override this stack's configuration needs."""
    cfg = _config(values)
    return [(path, value, why) for path, value, applies, why in OVERRIDES if applies(cfg)]


def overrides_for(values: dict[str, Any], charts: Path, preview_only: bool = False) -> dict[str, Any]:
    """The overrides any stack's values need on the simulation, as nested stack keys."""
    out: dict[str, Any] = {}
    for path, value, _ in applicable(values):
        if preview_only and path not in PREVIEW_KEYS:
            continue
        value = str(charts) if value == "<chart mirror>" else copy.deepcopy(value)
        top, *rest = path.split(".")
        if not rest:
            out[top] = value
            continue
        node = out.setdefault(top, {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        node[rest[-1]] = value
    return out


def merged(committed: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Stack values (without the project prefix) with ``changes`` deep-merged in."""
    out = copy.deepcopy(committed)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def describe(stack: str) -> list[str]:
    return describe_changes(committed(stack))


def describe_changes(values: dict[str, Any]) -> list[str]:
    return [
        f"sglang-platform:{path} = {value!r} ({'preview, up' if path in PREVIEW_KEYS else 'up'}): {why}"
        for path, value, why in applicable(values)
    ]


BEGIN = "<!-- e2e-overrides:begin -->"
END = "<!-- e2e-overrides:end -->"


def readme_block() -> str:
    """The table of the e2e overrides in docs/real-engine.md (tests/test_render.py keeps that copy current)."""
    rows = [BEGIN, "| stack key | value | stacks | from | why |", "|---|---|---|---|---|"]
    cfgs = {stack: _config(committed(stack)) for stack in E2E_STACKS}
    for path, value, applies, why in OVERRIDES:
        stacks = [stack for stack, cfg in cfgs.items() if applies(cfg)]
        if not stacks:
            continue
        shown = value if isinstance(value, str) else json.dumps(value)
        when = "preview, up" if path in PREVIEW_KEYS else "up"
        rows.append(f"| `sglang-platform:{path}` | `{shown}` | {', '.join(stacks)} | {when} | {why} |")
    rows.append(END)
    return "\n".join(rows)
