"""The alerting rules and dashboard queries, checked with the real Prometheus tooling (promtool).

`promtool check rules` parses every expression and annotation template; `promtool test rules` feeds
synthetic series and asserts which alerts fire. The rules are the ones the prod stack deploys. Both run for
every shipped SGLang release, with that release's metric names and the label shape its schedulers give their
gauges (from 0.4.10 one series per scheduler rank, and with DP attention one per DP group, some of them on
the worker pods).
"""

from __future__ import annotations

import copy

import pytest
from promql import grafana_to_promql, known_metrics, metric_names, run_promtool, write_yaml

from sglang_platform.config.monitoring import Slo
from sglang_platform.facts.metrics import SglangMetrics
from sglang_platform.facts.sglang import shipped_releases
from sglang_platform.facts.sglang.releases import facts
from sglang_platform.render import alerts, dashboard

RELEASES = shipped_releases()

NS = "deepseek"
GROUPS = ["deepseek-r1", "qwen", "ghost"]  # ghost: a group with no pods at all
# Gateways: deepseek-r1's has no available replica, qwen's serves, ghost's Deployment does not exist.
GATEWAYS = ["deepseek-r1-gateway", "qwen-gateway", "ghost-gateway"]


def prod_rule_groups(prod) -> list[dict]:
    (rule,) = [o for o in _objects(prod) if o["kind"] == "PrometheusRule"]
    return rule["spec"]["groups"]


def _objects(result):
    from tools import harness

    return harness.kubernetes_objects(result)


def test_prod_rules_pass_promtool_check(prod, tmp_path):
    write_yaml(tmp_path / "rules.yaml", {"groups": prod_rule_groups(prod)})
    proc = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 7 for the group and the GPUs, 3 for its cold start and weights staging, 4 for its gateway
    assert "SUCCESS: 14 rules found" in proc.stdout


@pytest.mark.parametrize("release", RELEASES)
def test_every_dashboard_query_parses(tmp_path, release):
    exprs = dashboard.expressions(NS, release)
    # 20 for the groups, 11 for cold starts and staging (+1 where the release exports its weight-load time),
    # 10 for the gateways, 3 for the GPUs
    load_time = SglangMetrics.of(release).has(dashboard.STARTUP_METRIC)
    assert len(exprs) == 44 + load_time
    for expr in exprs:
        assert metric_names(grafana_to_promql(expr)) <= known_metrics(release), expr
    rules = [{"record": f"dashboard:query_{i}", "expr": grafana_to_promql(e)} for i, e in enumerate(exprs)]
    write_yaml(tmp_path / "dashboard.yaml", {"groups": [{"name": "dashboard", "rules": rules}]})
    proc = run_promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_rejects_a_broken_expression(tmp_path):
    # The check above must be able to fail.
    write_yaml(tmp_path / "bad.yaml", {"groups": [{"name": "g", "rules": [{"record": "x:y", "expr": "sum by (a"}]}]})
    proc = run_promtool("check", "rules", "bad.yaml", cwd=tmp_path)
    assert proc.returncode != 0


def _series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _histogram(model: str, namespace: str, per_minute: dict[str, int]) -> list[dict]:
    """A TTFT histogram whose cumulative bucket counts grow by ``per_minute`` each minute."""
    return [
        _series(
            "sglang:time_to_first_token_seconds_bucket",
            {"namespace": namespace, "model_name": model, "le": le},
            f"0+{n}x40",
        )
        for le, n in per_minute.items()
    ]


SLOW = {"0.1": 0, "0.25": 0, "0.5": 10, "+Inf": 10}  # p99 ~ 0.5 s
FAST = {"0.1": 10, "0.25": 10, "0.5": 10, "+Inf": 10}  # p99 ~ 0.1 s


def _leader(group: str, pod: str, index: str, ready: str) -> list[dict]:
    labels = {"namespace": NS, "pod": pod}
    return [
        _series(
            "kube_pod_labels",
            labels | {alerts.LWS_NAME: group, alerts.LWS_WORKER_INDEX: index},
            "1x40",
        ),
        _series("kube_pod_status_ready", labels | {"condition": "true"}, ready),
        _series("kube_pod_status_ready", labels | {"condition": "false"}, "1x40" if ready == "0x40" else "0x40"),
    ]


def _gateway(metric: str, gateway: str, model: str, values: str, **labels: str) -> dict:
    return _series(metric, {"namespace": NS, "gateway": gateway, "model_name": model, **labels}, values)


def _upstream(gateway: str, model: str, namespace: str, ok: int, failed: int) -> list[dict]:
    """Per-minute growth of the gateway's upstream answers by status."""
    labels = {"namespace": namespace, "gateway": gateway, "model_name": model, "router_type": "http"}
    return [
        _series("smg_router_upstream_responses_total", labels | {"status_code": "200", "error_code": ""}, f"0+{ok}x40"),
        _series(
            "smg_router_upstream_responses_total",
            labels | {"status_code": "503", "error_code": "no_available_workers"},
            f"0+{failed}x40",
        ),
    ]


def _gpu(host: str, gpu: str, metric: str, values: str) -> dict:
    return _series(metric, {"Hostname": host, "gpu": gpu, "UUID": f"GPU-{host}-{gpu}"}, values)


def _gauge(release: str, name: str, model: str, per_rank: list[str]) -> list[dict]:
    """A scheduler gauge as the release exposes it: before 0.4.10 one series per pod (the schedulers of a node
    share one label set), from 0.4.10 one per recording rank (tp_rank, dp_rank; 0.5.23 adds moe_ep_rank), here
    two DP-attention groups, the second on the worker pod. ``per_rank`` gives each group's values."""
    base = {"namespace": NS, "model_name": model}
    if not facts(release).worker_metrics:
        return [_series(name, base | {"pod": f"{model}-0"}, per_rank[0])]
    out = []
    for rank, values in enumerate(per_rank):
        labels = base | {"pod": f"{model}-0" + ("-1" if rank else ""), "engine_type": "unified"}
        labels |= {"tp_rank": str(rank * 8), "pp_rank": "0", "dp_rank": str(rank)}
        if release == "0.5.23":
            labels["moe_ep_rank"] = str(rank * 8)
        out.append(_series(name, labels, values))
    return out


def input_series(release: str) -> list[dict]:
    two = facts(release).worker_metrics  # the release reports a DP group's queue on the pod it runs on
    # 0.8 more queued requests a minute in all: over the threshold of 10 from minute 13 (the alert fires 5
    # minutes later), while neither DP group alone reaches it by minute 20.
    queue = ["0+0.4x40", "0+0.4x40"] if two else ["0+0.8x40"]
    return [
        *_histogram("deepseek-r1", NS, SLOW),
        *_histogram("qwen", NS, FAST),
        *_histogram("other-stack", "elsewhere", SLOW),  # another namespace's model: not this stack's SLO
        # queue: growing above the threshold (only in sum, with two groups) / large but flat / growing but small
        *_gauge(release, "sglang:num_queue_reqs", "deepseek-r1", queue),
        *_gauge(release, "sglang:num_queue_reqs", "qwen", ["50x40", "0x40"]),
        *_gauge(release, "sglang:num_queue_reqs", "small", ["0+0.1x40", "0x40"]),
        # KV cache: nearly full (one group is enough) / half full / full for only 3 minutes
        *_gauge(release, "sglang:token_usage", "deepseek-r1", ["0.97x40", "0.5x40"]),
        *_gauge(release, "sglang:token_usage", "qwen", ["0.5x40", "0.5x40"]),
        *_gauge(release, "sglang:token_usage", "small", ["0.5x16 0.99x3 0.5x20", "0.5x40"]),
        *OTHER_SERIES,
    ]


OTHER_SERIES = [
    # deepseek-r1: leader not ready while a worker is; qwen: leader ready; ghost: no pods
    *_leader("deepseek-r1", "deepseek-r1-0", "0", "0x40"),
    *_leader("deepseek-r1", "deepseek-r1-0-1", "1", "1x40"),
    *_leader("qwen", "qwen-0", "0", "1x40"),
    # scrapes: deepseek-r1's fails (e.g. 401), qwen's works
    _series("up", {"namespace": NS, "job": f"{NS}/deepseek-r1-metrics", "pod": "deepseek-r1-0"}, "0x40"),
    _series("up", {"namespace": NS, "job": f"{NS}/qwen-metrics", "pod": "qwen-0"}, "1x40"),
    # gateways: deepseek-r1's Deployment has no available replica, qwen's has one
    _series(
        "kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "deepseek-r1-gateway"}, "0x40"
    ),
    _series("kube_deployment_status_replicas_available", {"namespace": NS, "deployment": "qwen-gateway"}, "1x40"),
    # upstream answers: deepseek-r1's gateway 20% 5xx, qwen's 1% (below the 5% threshold), "other" in
    # another namespace 100% (not this stack's)
    *_upstream("deepseek-r1-gateway", "deepseek-r1", NS, ok=8, failed=2),
    *_upstream("qwen-gateway", "qwen", NS, ok=99, failed=1),
    *_upstream("other-gateway", "other", "elsewhere", ok=0, failed=5),
    # circuit breakers: one of deepseek-r1's leaders opened at minute 15, qwen's only went half-open
    _gateway(
        "smg_worker_cb_transitions_total",
        "deepseek-r1-gateway",
        "deepseek-r1",
        "0x15 1x25",
        worker="http://10.0.0.7:8000",
        to="open",
    ),
    _gateway(
        "smg_worker_cb_transitions_total",
        "qwen-gateway",
        "qwen",
        "0x15 1x25",
        worker="http://10.0.0.9:8000",
        to="half_open",
    ),
    # gateway scrapes: one pod fails, one works
    _series("up", {"namespace": NS, "job": f"{NS}/sglang-gateway-metrics", "pod": "deepseek-r1-gateway-a"}, "0x40"),
    _series("up", {"namespace": NS, "job": f"{NS}/sglang-gateway-metrics", "pod": "qwen-gateway-b"}, "1x40"),
    # GPUs: an XID 79 on node-a GPU 3; node-b quiet
    _gpu("node-a", "3", "DCGM_FI_DEV_XID_ERRORS", "0x10 79x30"),
    _gpu("node-b", "0", "DCGM_FI_DEV_XID_ERRORS", "0x40"),
    # heat: hot for long / cool / hot for 3 minutes only
    _gpu("node-a", "0", "DCGM_FI_DEV_GPU_TEMP", "90x40"),
    _gpu("node-b", "0", "DCGM_FI_DEV_GPU_TEMP", "70x40"),
    _gpu("node-c", "0", "DCGM_FI_DEV_GPU_TEMP", "70x16 95x3 70x20"),
]


def _alert(labels: dict[str, str]) -> dict:
    return {"exp_labels": labels}


EXPECTED = {
    "SGLangTTFTHigh": [_alert({"severity": "warning", "namespace": NS, "model_name": "deepseek-r1"})],
    "SGLangQueueBacklogGrowing": [_alert({"severity": "warning", "namespace": NS, "model_name": "deepseek-r1"})],
    "SGLangKVCacheNearlyFull": [_alert({"severity": "warning", "namespace": NS, "model_name": "deepseek-r1"})],
    "SGLangNoReadyLeader": [
        _alert({"severity": "critical", "namespace": NS, "group": "deepseek-r1"}),
        _alert({"severity": "critical", "namespace": NS, "group": "ghost"}),
    ],
    "SGLangMetricsDown": [
        _alert(
            {
                "severity": "warning",
                "group": "deepseek-r1",
                "namespace": NS,
                "job": f"{NS}/deepseek-r1-metrics",
                "pod": "deepseek-r1-0",
            }
        )
    ],
    "SGLangGatewayUnavailable": [
        _alert({"severity": "critical", "namespace": NS, "gateway": "deepseek-r1-gateway"}),
        _alert({"severity": "critical", "namespace": NS, "gateway": "ghost-gateway"}),
    ],
    "SGLangGatewayErrorRateHigh": [
        _alert({"severity": "warning", "namespace": NS, "gateway": "deepseek-r1-gateway", "model_name": "deepseek-r1"})
    ],
    "SGLangGatewayCircuitOpen": [
        _alert(
            {
                "severity": "warning",
                "namespace": NS,
                "gateway": "deepseek-r1-gateway",
                "model_name": "deepseek-r1",
                "worker": "http://10.0.0.7:8000",
            }
        )
    ],
    "SGLangGatewayMetricsDown": [
        _alert(
            {
                "severity": "warning",
                "namespace": NS,
                "job": f"{NS}/sglang-gateway-metrics",
                "pod": "deepseek-r1-gateway-a",
            }
        )
    ],
    "GPUXidError": [_alert({"severity": "critical", "Hostname": "node-a", "gpu": "3", "UUID": "GPU-node-a-3"})],
    "GPUTemperatureHigh": [_alert({"severity": "warning", "Hostname": "node-a", "gpu": "0", "UUID": "GPU-node-a-0"})],
}


def _without_annotations(groups: list[dict]) -> list[dict]:
    # promtool compares annotations too; their templates are checked by `promtool check rules` instead.
    groups = copy.deepcopy(groups)
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return groups


def _unit_test(
    tmp_path, groups: list[dict], expected: dict[str, list[dict]], eval_time: str = "20m", release: str = "0.4.3.post2"
):
    write_yaml(tmp_path / "rules.yaml", {"groups": _without_annotations(groups)})
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series(release),
                "alert_rule_test": [
                    {"eval_time": eval_time, "alertname": name, "exp_alerts": exp} for name, exp in expected.items()
                ],
            }
        ],
    }
    write_yaml(tmp_path / "tests.yaml", tests)
    return run_promtool("test", "rules", "tests.yaml", cwd=tmp_path)


@pytest.mark.parametrize("release", RELEASES)
def test_each_alert_fires_when_it_should_and_only_then(tmp_path, release):
    groups = alerts.rule_groups(NS, GROUPS, Slo(), scraped=["deepseek-r1", "qwen"], gateways=GATEWAYS)
    for rule in (r for g in groups for r in g["rules"]):
        assert metric_names(rule["expr"]) <= known_metrics(release), rule["expr"]
    proc = _unit_test(tmp_path, groups, EXPECTED, release=release)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_nothing_fires_before_the_for_duration(tmp_path):
    # At minute 3 the conditions hold but not yet for 5 minutes; the XID and circuit-breaker alerts have no
    # `for` and fire as soon as the event is seen (XID at minute 10, the breaker at minute 15).
    groups = alerts.rule_groups(NS, GROUPS, Slo(), scraped=["deepseek-r1", "qwen"], gateways=GATEWAYS)
    expected: dict[str, list] = {name: [] for name in EXPECTED}
    proc = _unit_test(tmp_path, groups, expected, eval_time="3m")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    early = {"GPUXidError": EXPECTED["GPUXidError"], "SGLangGatewayCircuitOpen": []}
    proc = _unit_test(tmp_path, groups, early, eval_time="11m")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _unit_test(
        tmp_path, groups, {"SGLangGatewayCircuitOpen": EXPECTED["SGLangGatewayCircuitOpen"]}, eval_time="16m"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_circuit_that_opened_long_ago_no_longer_alerts(tmp_path):
    # The breaker opened at minute 15 and never again: once the window (5m) has passed, the alert resolves,
    # whatever the last value of the smg_worker_cb_state gauge was.
    groups = alerts.rule_groups(NS, GROUPS, Slo(), gateways=GATEWAYS)
    proc = _unit_test(tmp_path, groups, {"SGLangGatewayCircuitOpen": []}, eval_time="35m")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(("ratio", "fires"), [(0.05, ["deepseek-r1-gateway"]), (0.25, [])])
def test_gateway_error_ratio_comes_from_config(tmp_path, ratio, fires):
    groups = alerts.rule_groups(NS, GROUPS, Slo(gateway_error_ratio=ratio), gateways=GATEWAYS)
    expected = {
        "SGLangGatewayErrorRateHigh": [
            _alert({"severity": "warning", "namespace": NS, "gateway": g, "model_name": g.removesuffix("-gateway")})
            for g in fires
        ]
    }
    proc = _unit_test(tmp_path, groups, expected)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unit_test_harness_can_fail(tmp_path):
    # Claiming qwen's fast TTFT breaches the SLO must make promtool fail.
    groups = alerts.rule_groups(NS, GROUPS, Slo())
    wrong = {"SGLangTTFTHigh": [_alert({"severity": "warning", "namespace": NS, "model_name": "qwen"})]}
    proc = _unit_test(tmp_path, groups, wrong)
    assert proc.returncode != 0


@pytest.mark.parametrize(("target", "fires"), [(0.2, True), (0.6, False)])
def test_ttft_threshold_comes_from_config(tmp_path, target, fires):
    groups = alerts.rule_groups(NS, GROUPS, Slo(ttft_p99_seconds=target))
    expected = {"SGLangTTFTHigh": EXPECTED["SGLangTTFTHigh"] if fires else []}
    proc = _unit_test(tmp_path, groups, expected)
    assert proc.returncode == 0, proc.stdout + proc.stderr
