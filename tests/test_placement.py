"""The platform's CPU-only pods prefer nodes without a GPU (components/k8s.py, ``away_from_gpu_nodes``): the
gateway, Open WebUI, and the monitoring, KEDA and Volcano charts' pods, by the chart keys that exist in the
pinned charts (tools/chart_source.py). The GPU workloads are left where they are."""

from __future__ import annotations

import logging

import yaml
from conftest import API_KEY, run_with
from conftest import chart as pinned_chart

from sglang_platform.render.k8s import away_from_gpu_nodes, with_defaults
from tools import chart_source, harness

AWAY = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "preference": {
                    "matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}]
                },
            }
        ]
    }
}
# Where each chart takes the affinity, as (chart, path of keys) pairs: the platform sets exactly these.
CHART_KEYS: dict[str, list[tuple[str, ...]]] = {
    "kube-prometheus-stack": [
        ("prometheus", "prometheusSpec", "affinity"),
        ("alertmanager", "alertmanagerSpec", "affinity"),
        ("prometheusOperator", "affinity"),
        ("grafana", "affinity"),
        ("kube-state-metrics", "affinity"),
    ],
    "keda": [("affinity",)],
    "volcano": [("custom", "default_affinity")],
}


def release(result, chart: str) -> dict:
    (only,) = [r for r in harness.releases(result) if r["chart"] == chart]
    return only


def pod_spec(result, kind: str, name: str) -> dict:
    (obj,) = [o for o in harness.kubernetes_objects(result) if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj["spec"]["template"]["spec"]


def dig(values: dict, path: tuple[str, ...]):
    for key in path:
        values = values[key]
    return values


def test_the_helper_prefers_nodes_that_are_not_gpu_nodes():
    assert away_from_gpu_nodes() == AWAY
    # A fresh dict each time: a caller adding podAntiAffinity changes no one else's.
    assert away_from_gpu_nodes() is not away_from_gpu_nodes()


def test_open_webui_and_the_gateway_prefer_cpu_nodes(prod, dev):
    assert pod_spec(prod, "Deployment", "open-webui")["affinity"] == AWAY
    # prod's two gateway replicas also spread over nodes.
    assert pod_spec(prod, "Deployment", "deepseek-r1-gateway")["affinity"] == AWAY | {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {
                            "matchLabels": {
                                "app.kubernetes.io/name": "sglang-gateway",
                                "app.kubernetes.io/instance": "deepseek-r1-gateway",
                            }
                        },
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    }
    assert pod_spec(dev, "Deployment", "qwen-small-gateway")["affinity"] == AWAY


def test_the_charts_pods_prefer_cpu_nodes(prod):
    for chart, paths in CHART_KEYS.items():
        values = release(prod, chart)["values"]
        for path in paths:
            assert dig(values, path) == AWAY, (chart, path)
    assert release(prod, "volcano")["values"] == {"custom": {"default_affinity": AWAY}}
    assert release(prod, "keda")["values"]["affinity"] == AWAY


def test_each_key_is_one_the_pinned_charts_have():
    """Helm accepts any key (no chart has a values.schema.json): a misspelt one would place nothing. Each path is in
    the values.yaml of every version of the chart a committed stack installs (prod's KEDA 2.17.2 and Volcano 1.10.2
    as well as the BOM's), its subchart's for grafana and kube-state-metrics."""
    subcharts = {"grafana", "kube-state-metrics"}
    pinned = [c for c in chart_source.pinned_charts() if c.name in CHART_KEYS]
    assert {c.name for c in pinned} == set(CHART_KEYS)
    for pin in pinned:
        directory = pinned_chart(pin.name, pin.version)
        for path in CHART_KEYS[pin.name]:
            if pin.name == "kube-prometheus-stack" and path[0] in subcharts:
                values = yaml.safe_load((directory / "charts" / path[0] / "values.yaml").read_text())
                path = path[1:]
            else:
                values = yaml.safe_load((directory / "values.yaml").read_text())
            *parents, last = path
            assert last in dig(values, tuple(parents)), (str(pin), path)


def test_the_gpu_workloads_are_not_moved(prod):
    for kind, name in (("DaemonSet", "deepseek-r1-weights"),):
        assert "affinity" not in pod_spec(prod, kind, name)
    (job,) = [o for o in harness.kubernetes_objects(prod) if o["kind"] == "Job" and "-bench-" in o["metadata"]["name"]]
    assert "affinity" not in job["spec"]["template"]["spec"]
    lws = prod.k8s_object("LeaderWorkerSet", "deepseek-r1")["spec"]["leaderWorkerTemplate"]
    assert "nodeAffinity" not in (lws["leaderTemplate"]["spec"].get("affinity") or {})


def test_a_stacks_raw_values_replace_or_drop_the_default(caplog):
    mine: dict = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}

    def raw(values):
        values["monitoring"]["values"] = {"grafana": {"affinity": mine}, "kube-state-metrics": {"affinity": None}}
        values["keda"] = {**values.get("keda", {}), "values": {"affinity": None}}

    with caplog.at_level(logging.WARNING):
        result = run_with("prod", raw, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    values = release(result, "kube-prometheus-stack")["values"]
    # The stack's own affinity replaces the platform's whole, not merged with it.
    assert values["grafana"]["affinity"] == mine
    # null: none of the platform's (a null value reaches Helm as no key: the chart's own default, {}, applies).
    assert values["kube-state-metrics"].get("affinity") is None
    assert values["prometheus"]["prometheusSpec"]["affinity"] == AWAY
    assert release(result, "keda")["values"].get("affinity") is None
    # The stack's choice, not a conflict with a typed key: no warning.
    assert "is also set by a typed key" not in caplog.text


def test_defaults_go_where_the_raw_values_set_nothing():
    defaults = {("a", "b"): {"x": 1}, ("a", "c"): {"y": 2}, ("e",): 5}
    assert with_defaults(defaults, {"a": {"b": {"z": 3}}, "d": 4}) == {
        "a": {"b": {"z": 3}, "c": {"y": 2}},
        "d": 4,
        "e": 5,
    }
    # a raw non-mapping where a parent would be: left as the stack wrote it
    assert with_defaults({("a", "b"): 1}, {"a": None}) == {"a": None}
