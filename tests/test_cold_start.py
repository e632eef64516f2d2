"""The cold-start timeline and the startup and staging alerts, evaluated by promtool over synthetic
kube-state-metrics and stager series: the dashboard's queries give the durations a pod really took, and each
alert fires when it should and stays silent otherwise."""

from __future__ import annotations

import json

from conftest import run_with
from promql import grafana_to_promql, run_promtool, write_yaml

from sglang_platform.config.monitoring import Slo
from sglang_platform.facts.metrics import SglangMetrics
from sglang_platform.render import alerts, dashboard
from tools import harness

# The dev stack's release: it exports no weight-load time.
OLD = SglangMetrics.of("0.4.3.post2")

NS = "deepseek"
NAME, INDEX = alerts.LWS_NAME, alerts.LWS_WORKER_INDEX


def _series(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def _at(minute: int, value: float, until: int = 120) -> str:
    """Absent before ``minute``, then ``value`` every minute up to ``until`` (promtool's expanding notation)."""
    head = f"_x{minute} " if minute else ""
    return f"{head}{value:g}x{until - minute}"


def _pod(pod: str, group: str, index: str, times: dict[str, int], namespace: str = NS) -> list[dict]:
    """A group pod's kube-state-metrics series: each time in ``times`` (seconds) appears once it happened."""
    labels = {"namespace": namespace, "pod": pod, "uid": f"uid-{pod}"}
    out = [
        _series("kube_pod_labels", labels | {NAME: group, INDEX: index}, _at(times["created"] // 60, 1)),
        _series("kube_pod_created", labels, _at(times["created"] // 60, times["created"])),
    ]
    for key, metric in (
        ("scheduled", "kube_pod_status_scheduled_time"),
        ("initialized", "kube_pod_status_initialized_time"),
        ("ready", "kube_pod_status_ready_time"),
    ):
        if key in times:
            out.append(_series(metric, labels, _at(times[key] // 60, times[key])))
    if "started" in times:
        container = {"container": "sglang-leader" if index == "0" else "sglang-worker"}
        out.append(
            _series(
                "kube_pod_container_state_started", labels | container, _at(times["started"] // 60, times["started"])
            )
        )
    ready = "ready" in times
    start = times["created"] // 60
    flip = times.get("ready", 10**9) // 60
    values = f"_x{start} 0x{flip - start} 1x{120 - flip}" if ready else _at(start, 0)
    out.append(_series("kube_pod_status_ready", labels | {"condition": "true"}, values))
    return out


PODS = [
    # deepseek-r1: both pods scheduled a minute after creation, weights on their nodes after 20 more minutes;
    # the worker is ready after 73 minutes, the leader is still loading at minute 110.
    *_pod(
        "deepseek-r1-0", "deepseek-r1", "0", {"created": 600, "scheduled": 660, "initialized": 1800, "started": 1810}
    ),
    *_pod(
        "deepseek-r1-0-1",
        "deepseek-r1",
        "1",
        {"created": 600, "scheduled": 660, "initialized": 1800, "started": 1815, "ready": 5000},
    ),
    # qwen: a new group at minute 100, one pod scheduled and waiting for its weights, one not scheduled.
    *_pod("qwen-0", "qwen", "0", {"created": 6000, "scheduled": 6060}),
    *_pod("qwen-0-1", "qwen", "1", {"created": 6000}),
    # llama: a two-node group staged per node at minute 100: its leader's node has the weights and it waits in
    # its group gate; its worker's node is still staging (its wait-for-weights runs).
    *_pod("llama-0", "llama", "0", {"created": 6000, "scheduled": 6060}),
    _series(
        "kube_pod_init_container_status_running",
        {"namespace": NS, "pod": "llama-0", "uid": "uid-llama-0", "container": "wait-for-group"},
        _at(102, 1),
    ),
    *_pod("llama-0-1", "llama", "1", {"created": 6000, "scheduled": 6060}),
    _series(
        "kube_pod_init_container_status_running",
        {"namespace": NS, "pod": "llama-0-1", "uid": "uid-llama-0-1", "container": "wait-for-weights"},
        _at(101, 1),
    ),
    # Another namespace's old pod that never got ready: not this stack's.
    *_pod("stranger-0", "stranger", "0", {"created": 0}, namespace="elsewhere"),
]


def _stager(node: str, complete: str, done: str, errors: str) -> list[dict]:
    labels = {"namespace": NS, "group": "deepseek-r1", "model": "DeepSeek-R1", "revision": "master", "node": node}
    labels |= {"pod": f"deepseek-r1-weights-{node}"}
    return [
        _series("sglang_platform_weights_complete", labels, complete),
        _series("sglang_platform_weights_done_bytes", labels, done),
        _series("sglang_platform_weights_expected_bytes", labels, "1000x120"),
        _series("sglang_platform_weights_download_rate_bytes", labels, "0x120"),
        _series("sglang_platform_weights_errors_total", labels, errors),
    ]


STAGERS = [
    *_stager("node-a", "0x30 1x90", "0+40x25 1000x95", "0x120"),  # done at minute 30
    *_stager("node-b", "0x120", "0+40x10 400x110", "0x60 0+1x60"),  # stuck at 40% from minute 10, failing
    *_stager("node-c", "0x120", "0+8x120", "0x120"),  # slow but growing
]


def _groups() -> list[dict]:
    groups = alerts.rule_groups(
        NS, ["deepseek-r1", "qwen"], Slo(), budgets={"deepseek-r1": 90, "qwen": 15}, staging=True
    )
    for group in groups:  # promtool compares annotations too; `promtool check rules` checks their templates
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return [g for g in groups if g["name"] == "sglang-startup"]


def _test(tmp_path, alert_tests: list[dict], expr_tests: list[dict]):
    write_yaml(tmp_path / "rules.yaml", {"groups": _groups()})
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": PODS + STAGERS,
                "alert_rule_test": alert_tests,
                "promql_expr_test": expr_tests,
            }
        ],
    }
    write_yaml(tmp_path / "tests.yaml", tests)
    return run_promtool("test", "rules", "tests.yaml", cwd=tmp_path)


def _column(title: str) -> str:
    (timeline, _) = dashboard.startup_panels(OLD)
    (expr,) = [q for q, column in timeline.queries if column == title]
    return grafana_to_promql(dashboard._expr(expr, NS, OLD))


def _row(pod: str, group: str, index: str, value: float) -> dict:
    return {"labels": f'{{namespace="{NS}", pod="{pod}", {NAME}="{group}", {INDEX}="{index}"}}', "value": value}


def test_the_timeline_gives_each_pods_durations(tmp_path):
    expected = {
        "Scheduled after": [
            _row("deepseek-r1-0", "deepseek-r1", "0", 60),
            _row("deepseek-r1-0-1", "deepseek-r1", "1", 60),
            _row("llama-0", "llama", "0", 60),
            _row("llama-0-1", "llama", "1", 60),
            _row("qwen-0", "qwen", "0", 60),
        ],
        "Weights present after": [
            _row("deepseek-r1-0", "deepseek-r1", "0", 1200),
            _row("deepseek-r1-0-1", "deepseek-r1", "1", 1200),
        ],
        "SGLang started after": [
            _row("deepseek-r1-0", "deepseek-r1", "0", 1210),
            _row("deepseek-r1-0-1", "deepseek-r1", "1", 1215),
        ],
        "Ready after": [_row("deepseek-r1-0-1", "deepseek-r1", "1", 4400)],
    }
    exprs = [{"expr": _column(title), "eval_time": "110m", "exp_samples": rows} for title, rows in expected.items()]
    proc = _test(tmp_path, [], exprs)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pods_by_phase(tmp_path):
    (_, phases) = dashboard.startup_panels(OLD)
    expected = {
        "not scheduled": [("qwen", 1)],
        "waiting for weights": [("llama", 1), ("qwen", 1)],
        "waiting for the group": [("llama", 1)],
        "loading": [("deepseek-r1", 1)],
        "ready": [("deepseek-r1", 1)],
    }
    exprs = []
    for query, legend in phases.queries:
        phase = legend.split(" {{")[0]
        samples = [{"labels": f'{{{NAME}="{g}"}}', "value": n} for g, n in expected[phase]]
        exprs.append(
            {"expr": grafana_to_promql(dashboard._expr(query, NS, OLD)), "eval_time": "110m", "exp_samples": samples}
        )
    # At minute 50 the deepseek-r1 pods had their weights and were loading; qwen did not exist yet.
    early = phases.queries[3][0]
    exprs.append(
        {
            "expr": grafana_to_promql(dashboard._expr(early, NS, OLD)),
            "eval_time": "50m",
            "exp_samples": [{"labels": f'{{{NAME}="deepseek-r1"}}', "value": 2}],
        }
    )
    proc = _test(tmp_path, [], exprs)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_staging_panels(tmp_path):
    (share, _) = dashboard.STAGING_PANELS
    exprs = [
        {
            "expr": grafana_to_promql(dashboard._expr(share.queries[0][0], NS, OLD)),
            "eval_time": "60m",
            "exp_samples": [
                {"labels": '{group="deepseek-r1", node="node-a"}', "value": 1},
                {"labels": '{group="deepseek-r1", node="node-b"}', "value": 0.4},
                {"labels": '{group="deepseek-r1", node="node-c"}', "value": 0.48},
            ],
        }
    ]
    proc = _test(tmp_path, [], exprs)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _alert(labels: dict[str, str]) -> dict:
    return {"exp_labels": labels}


def test_a_start_past_its_budget_alerts(tmp_path):
    leader = {"severity": "warning", "group": "deepseek-r1", "namespace": NS, "pod": "deepseek-r1-0"}
    tests: list[dict] = [
        # At minute 99 the leader is 89 minutes old: within its 90 minute budget.
        {"eval_time": "99m", "alertname": "SGLangStartOverBudget", "exp_alerts": []},
        # At 110 it is 100 minutes old and still not ready; its ready worker and qwen's young pods are not alerted.
        {"eval_time": "110m", "alertname": "SGLangStartOverBudget", "exp_alerts": [_alert(leader)]},
    ]
    proc = _test(tmp_path, tests, [])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_stalled_and_failing_staging_alerts(tmp_path):
    node_b = {"severity": "warning", "namespace": NS, "group": "deepseek-r1", "node": "node-b"}
    tests: list[dict] = [
        # node-b stopped at minute 10: 15 minutes without change, then 5 more (for).
        {"eval_time": "24m", "alertname": "ModelWeightsStagingStalled", "exp_alerts": []},
        {"eval_time": "31m", "alertname": "ModelWeightsStagingStalled", "exp_alerts": [_alert(node_b)]},
        # Three failed attempts within the hour (from minute 60 on, one a minute).
        {"eval_time": "61m", "alertname": "ModelWeightsStagingFailing", "exp_alerts": []},
        {"eval_time": "64m", "alertname": "ModelWeightsStagingFailing", "exp_alerts": [_alert(node_b)]},
    ]
    proc = _test(tmp_path, tests, [])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_harness_can_fail(tmp_path):
    wrong = [{"eval_time": "110m", "alertname": "SGLangStartOverBudget", "exp_alerts": []}]
    assert _test(tmp_path, wrong, []).returncode != 0


def test_the_stack_deploys_budget_alerts_per_group(prod):
    rule = prod.k8s_object("PrometheusRule", "sglang-platform")
    (startup,) = [g for g in rule["spec"]["groups"] if g["name"] == "sglang-startup"]
    (budget,) = [r for r in startup["rules"] if r["alert"] == "SGLangStartOverBudget"]
    # prod's startup budget: 90 minutes (probes.startupTimeoutMinutes, above the 75 the weights need).
    assert budget["expr"] == (
        'max by (namespace, pod) (time() - kube_pod_created{namespace="deepseek"}) > 5400 '
        f'and on (namespace, pod) kube_pod_labels{{namespace="deepseek", {NAME}="deepseek-r1"}} '
        'unless on (namespace, pod) (kube_pod_status_ready{namespace="deepseek", condition="true"} == 1)'
    )
    assert budget["labels"] == {"severity": "warning", "group": "deepseek-r1"}
    # A multi-node group placed on a node still staging waits in its group gate (docs/model-weights.md): named,
    # with what it costs and how to free the GPUs sooner.
    assert (
        "waiting for the group (a multi-node group staged per node: this pod's node has the weights, another "
        "pod's node is still staging; `kubectl logs <pod> -c wait-for-group` names it, and this pod holds its GPUs "
        "until then without loading)" in budget["annotations"]["description"]
    )
    assert "cordon the node until its stager is Ready" in budget["annotations"]["description"]
    assert [r["alert"] for r in startup["rules"]] == [
        "SGLangStartOverBudget",
        "ModelWeightsStagingStalled",
        "ModelWeightsStagingFailing",
    ]


def test_the_stagers_are_scraped_with_their_node(prod):
    monitor = prod.k8s_object("PodMonitor", "sglang-platform-weights")
    assert monitor["metadata"]["namespace"] == "deepseek"
    ds_labels = prod.k8s_object("DaemonSet", "deepseek-r1-weights")["spec"]["template"]["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= ds_labels.items()
    assert monitor["spec"] == {
        "namespaceSelector": {"matchNames": ["deepseek"]},
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/component": "weights-stager",
                "app.kubernetes.io/part-of": "sglang-platform",
                "app.kubernetes.io/managed-by": "pulumi",
            }
        },
        "podMetricsEndpoints": [
            {
                "port": "metrics",
                "path": "/metrics",
                "interval": "15s",
                "relabelings": [
                    {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node", "action": "replace"}
                ],
            }
        ],
    }


def test_without_staging_no_stager_monitor_panels_or_alerts(dev):
    assert not [o for o in harness.kubernetes_objects(dev) if o["metadata"]["name"] == "sglang-platform-weights"]
    board = json.loads(dev.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    titles = [p["title"] for p in board["panels"]]
    assert "Cold-start timeline" in titles and "Weights staged per node" not in titles
    rules = dev.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"]
    (startup,) = [g for g in rules if g["name"] == "sglang-startup"]
    # dev's budget: 15 minutes (probes.startupTimeoutMinutes).
    assert [(r["alert"], r["expr"].split(" > ")[1].split()[0]) for r in startup["rules"]] == [
        ("SGLangStartOverBudget", "900")
    ]


def test_the_timeline_is_a_table_of_instant_queries(prod):
    board = json.loads(prod.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    (timeline,) = [p for p in board["panels"] if p["title"] == "Cold-start timeline"]
    assert timeline["type"] == "table"
    assert [(t["refId"], t["instant"], t["format"]) for t in timeline["targets"]] == [
        (ref, True, "table") for ref in "ABCD"
    ]
    assert [t["id"] for t in timeline["transformations"]] == ["merge", "organize"]
    assert timeline["transformations"][1]["options"]["renameByName"] == {
        NAME: "Group",
        INDEX: "Worker",
        "pod": "Pod",
        "Value #A": "Scheduled after",
        "Value #B": "Weights present after",
        "Value #C": "SGLang started after",
        "Value #D": "Ready after",
    }
    assert timeline["fieldConfig"]["defaults"]["unit"] == "s"


def test_a_release_that_exports_its_load_time_gets_a_column():
    (timeline, _) = dashboard.startup_panels(SglangMetrics.of("0.5.23"))
    assert [c for _, c in timeline.queries] == [
        "Scheduled after",
        "Weights present after",
        "SGLang started after",
        "Weight load took",
        "Ready after",
    ]
    assert 'sglang:startup_time_seconds{{ns}, phase="load_weight"}' in timeline.queries[3][0]
    # 0.4.3.post2 (and everything up to 0.5.1) exports no such metric: no column that would stay empty.
    assert "Weight load took" not in [c for _, c in dashboard.startup_panels(OLD)[0].queries]


def test_budget_alerts_follow_the_startup_budget():
    result = run_with("dev", lambda v: v["inferenceGroups"][0]["probes"].update(startupTimeoutMinutes=40))
    rules = result.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"]
    (startup,) = [g for g in rules if g["name"] == "sglang-startup"]
    assert " > 2400 " in startup["rules"][0]["expr"]
