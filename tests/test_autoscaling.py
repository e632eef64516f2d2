"""Elastic scaling: KEDA, the ScaledObject per group, the queries its triggers run, and the config rules."""

from __future__ import annotations

import copy

import pytest
from conftest import REQUIRED_SECRETS, lws, run_with, stack_values
from promql import known_metrics, metric_names, run_promtool, write_yaml

from sglang_platform.components.autoscaling import kv_cache_query, queue_query
from sglang_platform.config import ConfigError, validate
from sglang_platform.facts.sglang import shipped_releases
from sglang_platform.render.k8s import away_from_gpu_nodes
from tools import harness

SCALED_OBJECT = "keda.sh/v1alpha1"


def scaled_object(result: harness.RunResult, group: str) -> dict:
    return result.k8s_object("ScaledObject", f"{group}-autoscaler")


def test_dev_scales_its_group_on_queue_depth_and_kv_cache(dev):
    obj = scaled_object(dev, "qwen-small")
    assert obj["apiVersion"] == SCALED_OBJECT
    assert obj["metadata"]["namespace"] == "sglang-dev"
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": "qwen-small",
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (1, 2, 30)
    prometheus = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert spec["triggers"] == [
        {
            "type": "prometheus",
            "name": "queue-depth",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": prometheus,
                "query": 'sum(sglang:num_queue_reqs{namespace="sglang-dev",model_name="qwen2.5-1.5b-instruct"})',
                "threshold": "4",
                "ignoreNullValues": "true",
            },
        },
        {
            "type": "prometheus",
            "name": "kv-cache-usage",
            "metricType": "Value",
            "metadata": {
                "serverAddress": prometheus,
                "query": 'avg(sglang:token_usage{namespace="sglang-dev",model_name="qwen2.5-1.5b-instruct"})',
                "threshold": "0.85",
                "ignoreNullValues": "true",
            },
        },
    ]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == {
        "scaleUp": {
            "stabilizationWindowSeconds": 120,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 600}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 1800,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 900}],
        },
    }
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicas"}


def test_the_autoscaler_owns_the_group_count(dev, prod):
    for result, group in ((dev, "qwen-small"), (prod, "deepseek-r1")):
        assert lws(result, group)["spec"]["replicas"] == 1  # minReplicas
        assert result.named(f"{group}-lws").ignore_changes == ["spec.replicas"]


def test_groups_without_autoscaling_keep_their_replicas_and_get_no_scaler():
    def static(values):
        del values["inferenceGroups"][0]["autoscaling"]
        values["inferenceGroups"][0]["replicas"] = 3

    result = run_with("dev", static)
    assert result.error is None, result.error
    assert lws(result, "qwen-small")["spec"]["replicas"] == 3
    assert result.named("qwen-small-lws").ignore_changes == []
    assert not [o for o in harness.kubernetes_objects(result) if o["kind"] == "ScaledObject"]


def test_keda_is_a_pinned_release_that_keeps_its_crds(dev):
    (keda,) = [r for r in harness.releases(dev) if r["chart"] == "keda"]
    assert keda == {
        "name": "keda",
        "namespace": "keda",
        "chart": "keda",
        "repository": "https://kedacore.github.io/charts",
        "version": "2.20.2",
        "values": {
            "crds": {"install": True, "additionalAnnotations": {"helm.sh/resource-policy": "keep"}},
            # Its pods off the GPU nodes where they can (tests/test_placement.py).
            "affinity": away_from_gpu_nodes(),
        },
    }


def test_scaled_object_waits_for_keda_and_its_group(dev):
    # A component in depends_on stands for its children: the KEDA release and the group's LeaderWorkerSet.
    deps = dev.named("qwen-small-autoscaler-scaledobject").dependencies
    assert dev.urn_of("keda-release") in deps
    assert dev.urn_of("qwen-small-lws") in deps


def test_keda_present_installs_nothing_but_still_scales():
    result = run_with("dev", lambda v: v.update(keda={"mode": "present"}))
    assert result.error is None, result.error
    assert not [r for r in harness.releases(result) if r["chart"] == "keda"]
    assert scaled_object(result, "qwen-small")["spec"]["maxReplicaCount"] == 2


def test_an_explicit_prometheus_address_replaces_the_monitoring_stack():
    def external(values):
        values["monitoring"] = {"enabled": False}
        values["keda"] = {"mode": "present", "prometheusAddress": "http://thanos-query.observability.svc:9090"}

    result = run_with("dev", external)
    assert result.error is None, result.error
    triggers = scaled_object(result, "qwen-small")["spec"]["triggers"]
    assert {t["metadata"]["serverAddress"] for t in triggers} == {"http://thanos-query.observability.svc:9090"}


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw, REQUIRED_SECRETS)
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def dev_with(**changes) -> dict:
    raw = copy.deepcopy(stack_values("dev"))
    for key, value in changes.items():
        raw[key] = value
    return raw


def test_min_above_max_is_refused():
    raw = dev_with()
    raw["inferenceGroups"][0]["autoscaling"] = {"minReplicas": 3, "maxReplicas": 2}
    assert problems(raw) == [
        "sglang-platform:inferenceGroups[0].autoscaling.minReplicas: minReplicas 3 is above maxReplicas 2"
    ]


def test_autoscaling_needs_keda_and_prometheus():
    raw = dev_with(keda={"mode": "absent"}, monitoring={"enabled": False})
    assert problems(raw) == [
        "sglang-platform:inferenceGroups[0].autoscaling: autoscaling needs KEDA: set sglang-platform:keda.mode to "
        "install (this stack installs it) or present (the cluster already runs it)",
        "sglang-platform:inferenceGroups[0].autoscaling: autoscaling reads SGLang's metrics from Prometheus: "
        "enable sglang-platform:monitoring or set sglang-platform:keda.prometheusAddress to a Prometheus that "
        "scrapes the groups",
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("maxReplicas", 0, "Input should be greater than or equal to 1 (got 0)"),
        ("kvCacheUsage", 1.5, "Input should be less than or equal to 1 (got 1.5)"),
        ("queueDepthPerGroup", 0, "Input should be greater than 0 (got 0)"),
        ("scaleDownPeriodSeconds", 5, "Input should be greater than or equal to 15 (got 5)"),
    ],
)
def test_field_ranges(field, value, message):
    raw = dev_with()
    raw["inferenceGroups"][0]["autoscaling"][field] = value
    assert problems(raw) == [f"sglang-platform:inferenceGroups[0].autoscaling.{field}: {message}"]


@pytest.mark.parametrize("release", shipped_releases())
def test_trigger_queries_read_only_sglang_metrics_of_the_pinned_release(release):
    for query in (queue_query("ns", "m"), kv_cache_query("ns", "m")):
        assert metric_names(query) <= known_metrics(release), query


def test_trigger_queries_count_only_their_model_in_their_namespace(tmp_path):
    """promtool evaluates both queries over synthetic series: two leaders of the model, another model, and
    the same model name in another namespace; only the first two count."""
    rules = {
        "groups": [
            {
                "name": "triggers",
                "rules": [
                    {"record": "trigger:queue", "expr": queue_query("serving", "r1")},
                    {"record": "trigger:kv", "expr": kv_cache_query("serving", "r1")},
                ],
            }
        ]
    }
    write_yaml(tmp_path / "rules.yaml", rules)
    series = [
        ('sglang:num_queue_reqs{namespace="serving", model_name="r1", pod="r1-0"}', "6x3"),
        ('sglang:num_queue_reqs{namespace="serving", model_name="r1", pod="r1-1"}', "10x3"),
        ('sglang:num_queue_reqs{namespace="serving", model_name="other", pod="o-0"}', "100x3"),
        ('sglang:num_queue_reqs{namespace="elsewhere", model_name="r1", pod="r1-0"}', "100x3"),
        ('sglang:token_usage{namespace="serving", model_name="r1", pod="r1-0"}', "0.5x3"),
        ('sglang:token_usage{namespace="serving", model_name="r1", pod="r1-1"}', "0.9x3"),
        ('sglang:token_usage{namespace="elsewhere", model_name="r1", pod="r1-0"}', "0.1x3"),
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {
                        "expr": "trigger:queue",
                        "eval_time": "2m",
                        "exp_samples": [{"labels": "trigger:queue", "value": 16}],
                    },
                    {"expr": "trigger:kv", "eval_time": "2m", "exp_samples": [{"labels": "trigger:kv", "value": 0.7}]},
                ],
            }
        ],
    }
    write_yaml(tmp_path / "test.yaml", test)
    proc = run_promtool("test", "rules", "test.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
