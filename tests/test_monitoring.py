"""MonitoringStack as rendered: the chart's values, the monitors, the rules, the dashboard."""

from __future__ import annotations

import json

import pytest
from conftest import API_KEY, GRAFANA_PASSWORD, Capability, run_with, stack_values, unavailable
from promql import known_metrics, metric_names

from sglang_platform.config.monitoring import Slo
from sglang_platform.facts.metrics import SglangMetrics
from sglang_platform.facts.sglang import shipped_releases
from sglang_platform.render import alerts, dashboard
from tools import crds, harness


def release(result) -> dict:
    (only,) = [r for r in harness.releases(result) if r["chart"] == "kube-prometheus-stack"]
    return only


def test_release_is_pinned_and_selects_the_platforms_monitors(prod):
    r = release(prod)
    assert (r["name"], r["namespace"], r["chart"], r["version"], r["repository"]) == (
        "kube-prometheus-stack",
        "monitoring",
        "kube-prometheus-stack",
        "88.3.0",
        "https://prometheus-community.github.io/helm-charts",
    )
    spec = r["values"]["prometheus"]["prometheusSpec"]
    # The chart default (true) would only select objects labelled release=kube-prometheus-stack, which the
    # platform's PodMonitors, ServiceMonitor and PrometheusRule are not.
    for kind in ("podMonitor", "serviceMonitor", "rule", "probe", "scrapeConfig"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False, kind
    for obj in harness.kubernetes_objects(prod):
        if obj["kind"] in ("PodMonitor", "ServiceMonitor", "PrometheusRule"):
            assert "release" not in obj["metadata"]["labels"]


def test_retention_and_storage_from_config(prod):
    values = release(prod)["values"]
    spec = values["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d"
    assert "retentionSize" not in spec
    assert spec["storageSpec"] == {
        "volumeClaimTemplate": {
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "200Gi"}}}
        }
    }
    assert values["grafana"]["persistence"] == {
        "enabled": True,
        "size": "10Gi",
        "annotations": {"helm.sh/resource-policy": "keep"},
    }


def test_monitoring_state_survives_destroy_unless_the_stack_says_otherwise(prod, dev):
    """Deleting the namespace would delete Prometheus' and Grafana's claims; helm uninstall would delete
    Grafana's (a chart template) unless it carries the keep policy."""
    assert prod.named("monitoring-namespace").retain_on_delete is True
    assert dev.named("monitoring-namespace").retain_on_delete is True

    def opt_out(values):
        values["monitoring"]["retainOnDestroy"] = False

    result = run_with("prod", opt_out, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    assert result.named("monitoring-namespace").retain_on_delete is False
    assert release(result)["values"]["grafana"]["persistence"] == {"enabled": True, "size": "10Gi"}

    def tune(v):
        v["monitoring"]["prometheus"] = {"retentionSize": "45GB", "storageClass": "fast-ssd"}

    spec = release(run_with("dev", tune))["values"]["prometheus"]["prometheusSpec"]
    assert (spec["retention"], spec["retentionSize"]) == ("15d", "45GB")
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "fast-ssd"


def test_grafana_admin_password_comes_from_a_secret(prod):
    grafana = release(prod)["values"]["grafana"]
    assert grafana["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    assert "adminPassword" not in grafana
    secret = prod.named("monitoring-grafana-admin")
    assert secret.inputs["metadata"]["namespace"] == "monitoring"
    assert harness.is_secret(secret.inputs["stringData"])
    assert secret.plain["stringData"] == {"admin-user": "admin", "admin-password": GRAFANA_PASSWORD}
    rendered = json.dumps([r.spec for r in prod.resources]) + json.dumps(prod.outputs)
    assert GRAFANA_PASSWORD not in rendered
    # the release is installed after the Secret it reads
    assert secret.urn in prod.named("monitoring-kube-prometheus-stack").dependencies


def test_pod_monitor_scrapes_the_leader_with_the_groups_key(prod):
    obj = prod.k8s_object("PodMonitor", "deepseek-r1-metrics")
    assert obj["apiVersion"] == "monitoring.coreos.com/v1"
    assert obj["metadata"]["namespace"] == "deepseek"  # next to the Secret it reads
    assert obj["spec"] == {
        "namespaceSelector": {"matchNames": ["deepseek"]},
        "selector": {
            "matchLabels": {
                "leaderworkerset.sigs.k8s.io/name": "deepseek-r1",
                "leaderworkerset.sigs.k8s.io/worker-index": "0",
            }
        },
        "podMetricsEndpoints": [
            {
                "port": "http",
                "path": "/metrics",
                "interval": "15s",
                "authorization": {"type": "Bearer", "credentials": {"name": "deepseek-r1-api-key", "key": "api-key"}},
            }
        ],
    }
    # its CRD comes with the chart
    assert (
        prod.urn_of("monitoring-kube-prometheus-stack") in prod.named("monitoring-deepseek-r1-podmonitor").dependencies
    )
    # the leader pods it selects carry those labels and name the port
    leader = prod.k8s_object("LeaderWorkerSet", "deepseek-r1")["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    assert leader["metadata"]["labels"]["role"] == "leader"
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in leader["spec"]["containers"][0]["ports"]


def test_without_api_key_the_scrape_sends_none(dev):
    endpoint = dev.k8s_object("PodMonitor", "qwen-small-metrics")["spec"]["podMetricsEndpoints"][0]
    assert "authorization" not in endpoint


def _pin(image: str):
    def mutate(values):
        values.setdefault("versions", {})["sglangImage"] = image
        # prod's hosts with an R580 driver, which runs every CUDA build (they declare the reference's 550: cu124 only).
        if "gpuNodes" in values:
            values["gpuNodes"]["driverVersion"] = "580.95.05"

    return mutate


@pytest.mark.parametrize(
    ("image", "key", "workers"),
    [
        # /metrics behind --api-key up to 0.4.5; exempt from 0.4.6; workers serve it from 0.4.10.
        ("lmsysorg/sglang:v0.4.5-cu124", True, False),
        ("lmsysorg/sglang:v0.4.6-cu124", False, False),
        ("lmsysorg/sglang:v0.4.10-cu126", False, True),
        ("lmsysorg/sglang:v0.5.23-cu130", False, True),
    ],
)
def test_pod_monitor_follows_the_pinned_release(image, key, workers):
    result = run_with("prod", _pin(image), secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    spec = result.k8s_object("PodMonitor", "deepseek-r1-metrics")["spec"]
    (endpoint,) = spec["podMetricsEndpoints"]
    assert ("authorization" in endpoint) is key
    selector = {"leaderworkerset.sigs.k8s.io/name": "deepseek-r1"}
    if not workers:
        selector["leaderworkerset.sigs.k8s.io/worker-index"] = "0"
    assert spec["selector"] == {"matchLabels": selector}


def test_groups_without_metrics_get_no_monitor():
    def two(values):
        values["inferenceGroups"][0]["enableMetrics"] = False
        second = dict(values["inferenceGroups"][0], name="other", enableMetrics=True)
        # Hand-staged weights on the claim the first group's cache creates, without a download of its own.
        second["model"] = {"path": "Other-Model", "servedName": "other", "source": "local"}
        second["modelVolume"] = {k: v for k, v in second["modelVolume"].items() if k != "pvc"}
        values["inferenceGroups"].append(second)

    result = run_with("dev", two)
    assert [o["metadata"]["name"] for o in harness.kubernetes_objects(result) if o["kind"] == "PodMonitor"] == [
        "other-metrics",
        "sglang-gateway-metrics",  # the gateways' metrics are their own, whatever the groups say
    ]
    rules = result.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"][0]["rules"]
    assert [(r["alert"], r["labels"].get("group")) for r in rules if "group" in r["labels"]] == [
        ("SGLangNoReadyLeader", "qwen-small"),
        ("SGLangNoReadyLeader", "other"),
        ("SGLangMetricsDown", "other"),
    ]


def test_prometheus_may_reach_the_api_port(prod):
    clients = prod.k8s_object("NetworkPolicy", "deepseek-r1-ingress")["spec"]["ingress"][1]["from"]
    namespaces = [c["namespaceSelector"]["matchExpressions"][0]["values"] for c in clients if "namespaceSelector" in c]
    assert namespaces == [["monitoring"]]


def test_dcgm_exporter_scraped_unless_the_gpu_operator_does_it(prod):
    obj = prod.k8s_object("ServiceMonitor", "dcgm-exporter")
    assert obj["metadata"]["namespace"] == "monitoring"
    assert obj["spec"] == {
        "namespaceSelector": {"matchNames": ["gpu-operator"]},
        "selector": {"matchLabels": {"app": "nvidia-dcgm-exporter"}},
        "endpoints": [{"port": "gpu-metrics", "path": "/metrics", "interval": "15s"}],
    }

    def off(values):
        values["monitoring"]["dcgm"] = {"enabled": False}

    result = run_with("dev", off)
    assert not [o for o in harness.kubernetes_objects(result) if o["kind"] == "ServiceMonitor"]
    groups = result.k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"]
    assert [g["name"] for g in groups] == ["sglang-slo", "sglang-startup", "sglang-gateway"]
    board = json.loads(result.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    assert "GPU temperature" not in [p["title"] for p in board["panels"]]


def test_rules_follow_the_slo_config(prod):
    (rule,) = [o for o in harness.kubernetes_objects(prod) if o["kind"] == "PrometheusRule"]
    assert rule["metadata"]["namespace"] == "monitoring"
    # What prod's stack file asks for, written out here rather than taken from alerts.rule_groups (the function
    # under test): the SLO and GPU alerts, the start budget, staging (prod stages weights on every node) and its
    # gateway's.
    assert {g["name"]: [r["alert"] for r in g["rules"]] for g in rule["spec"]["groups"]} == {
        "sglang-slo": [
            "SGLangTTFTHigh",
            "SGLangQueueBacklogGrowing",
            "SGLangKVCacheNearlyFull",
            "SGLangNoReadyLeader",
            "SGLangMetricsDown",
        ],
        "sglang-startup": ["SGLangStartOverBudget", "ModelWeightsStagingStalled", "ModelWeightsStagingFailing"],
        "sglang-gateway": [
            "SGLangGatewayUnavailable",
            "SGLangGatewayErrorRateHigh",
            "SGLangGatewayCircuitOpen",
            "SGLangGatewayMetricsDown",
        ],
        "gpu-health": ["GPUXidError", "GPUTemperatureHigh"],
    }
    by_name = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    # Every SGLang and gateway alert reads prod's namespace only; the GPU ones read the node exporters' DCGM series.
    for name, alert in by_name.items():
        assert ('namespace="deepseek"' in alert["expr"]) == (not name.startswith("GPU")), name
    budget = stack_values("prod")["inferenceGroups"][0]["probes"]["startupTimeoutMinutes"]
    assert (
        f'(time() - kube_pod_created{{namespace="deepseek"}}) > {budget * 60} '
        in (by_name["SGLangStartOverBudget"]["expr"])
    )
    assert by_name["SGLangStartOverBudget"]["labels"] == {"group": "deepseek-r1", "severity": "warning"}
    assert by_name["SGLangGatewayUnavailable"]["labels"] == {
        "gateway": "deepseek-r1-gateway",
        "namespace": "deepseek",
        "severity": "critical",
    }
    assert 'deployment="deepseek-r1-gateway"' in by_name["SGLangGatewayUnavailable"]["expr"]
    assert by_name["SGLangNoReadyLeader"]["labels"]["severity"] == "critical"
    assert by_name["SGLangTTFTHigh"]["expr"] == (
        "histogram_quantile(0.99, sum by (namespace, model_name, le) "
        # A disaggregated model's first token is its prefill role's: decode's series are left out.
        '(rate(sglang:time_to_first_token_seconds_bucket{namespace="deepseek", pd_role!="decode"}[5m]))) > 0.2'
    )

    def tighten(values):
        values["monitoring"]["slo"] = {"ttftP99Seconds": 0.5, "kvCacheUsageRatio": 0.9, "gpuTemperatureCelsius": 80}

    rules = run_with("dev", tighten).k8s_object("PrometheusRule", "sglang-platform")["spec"]["groups"]
    by_name = {r["alert"]: r["expr"] for g in rules for r in g["rules"]}
    assert by_name["SGLangTTFTHigh"].endswith(") > 0.5")
    assert by_name["SGLangKVCacheNearlyFull"].endswith(") > 0.9")
    assert by_name["GPUTemperatureHigh"].endswith(") > 80")


def test_dashboard_configmap_loads_in_grafana_shape(prod):
    cm = prod.k8s_object("ConfigMap", "sglang-platform-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"  # the sidecar's label
    values = release(prod)["values"]["grafana"]["sidecar"]["dashboards"]
    assert (values["enabled"], values["label"], values["labelValue"]) == (True, "grafana_dashboard", "1")
    board = json.loads(cm["data"]["sglang-platform.json"])
    assert (board["uid"], board["title"], board["schemaVersion"]) == ("sglang-platform", "SGLang inference", 41)
    panels = [p for p in board["panels"] if p["type"] == "timeseries"]
    assert [p["title"] for p in panels] == [
        "Request throughput",
        "Token throughput",
        "Time to first token",
        "Inter-token latency",
        "End-to-end request latency",
        "Running and queued requests",
        "Serving groups and queue depth",
        "KV-cache usage",
        "Prefix-cache hit rate",
        "Pods starting, by phase",
        "Weights staged per node",
        "Weights download rate",
        "Gateway requests and upstream errors",
        "Gateway request latency",
        "Gateway workers: registered and healthy",
        "Requests in flight per worker",
        "Circuit breakers and retries",
        "GPU utilisation",
        "GPU memory used",
        "GPU temperature",
    ]
    for p in panels:
        ref_ids = [t["refId"] for t in p["targets"]]
        assert all(ref_ids) and len(set(ref_ids)) == len(ref_ids), p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    latency = next(p for p in panels if p["title"] == "Time to first token")
    assert [t["legendFormat"] for t in latency["targets"]] == [
        "p50 {{model_name}}",
        "p90 {{model_name}}",
        "p99 {{model_name}}",
    ]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "model"]


def _all_expressions(result) -> list[str]:
    board = json.loads(result.k8s_object("ConfigMap", "sglang-platform-dashboard")["data"]["sglang-platform.json"])
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    rule = result.k8s_object("PrometheusRule", "sglang-platform")
    return exprs + [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]


def test_every_metric_exists_in_the_pinned_releases(prod):
    known = known_metrics("0.4.4")  # Pulumi.prod.yaml's
    used = set().union(*(metric_names(e) for e in _all_expressions(prod)))
    assert used - known == set()
    # the lists are real: the histogram and DCGM names the panels need are there
    assert {
        "sglang:time_to_first_token_seconds_bucket",
        "sglang:inter_token_latency_seconds_bucket",
        "sglang:e2e_request_latency_seconds_bucket",
        "sglang:cache_hit_rate",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_GPU_TEMP",
        "kube_pod_status_ready",
    } <= used


def test_metric_check_catches_names_from_other_releases():
    # 0.4.3.post3 added inter_token_latency, 0.4.5 dropped time_per_output_token.
    itl = "histogram_quantile(0.9, sum by (le) (rate(sglang:inter_token_latency_seconds_bucket[5m])))"
    tpot = itl.replace("inter_token_latency", "time_per_output_token")
    assert metric_names(itl) - known_metrics("0.4.3.post2") == {"sglang:inter_token_latency_seconds_bucket"}
    assert metric_names(tpot) - known_metrics("0.5.23") == {"sglang:time_per_output_token_seconds_bucket"}
    assert metric_names(itl) - known_metrics("0.4.4") == set() == metric_names(tpot) - known_metrics("0.4.4")
    assert dashboard.expressions("x")  # and the dashboard's own list is not empty


@pytest.mark.parametrize(
    ("release", "histogram"),
    [
        ("0.4.3.post2", "sglang:time_per_output_token_seconds"),
        ("0.4.4", "sglang:inter_token_latency_seconds"),
        ("0.5.23", "sglang:inter_token_latency_seconds"),
    ],
)
def test_the_dashboard_reads_the_pinned_releases_names(release, histogram):
    used = set().union(*(metric_names(e) for e in dashboard.expressions("x", release)))
    sglang = {n for n in used if n.startswith("sglang:")}
    assert sglang <= known_metrics(release)
    assert f"{histogram}_bucket" in sglang
    result = run_with("dev", _pin(f"lmsysorg/sglang:v{release}-cu124"))
    assert result.error is None, result.error
    rendered = set().union(*(metric_names(e) for e in _all_expressions(result)))
    assert f"{histogram}_bucket" in rendered and rendered - known_metrics(release) == set()


def test_metric_list_tool_reads_a_wheel(tmp_path):
    import zipfile

    from tools.metric_names import sglang_metrics

    source = (
        "from prometheus_client import Counter, Gauge, Histogram\n"
        "class C:\n"
        "    def __init__(self, labels):\n"
        '        self.a = Gauge(name="sglang:token_usage", documentation="x", labelnames=labels)\n'
        '        self.b = Counter(name="sglang:prompt_tokens_total", documentation="x")\n'
        '        self.c = Counter("sglang:requests", "x")\n'
        '        self.d = Histogram(name="sglang:time_to_first_token_seconds", documentation="x", buckets=[1])\n'
    )
    wheel = tmp_path / "sglang-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("sglang/srt/metrics/collector.py", source)
        zf.writestr("sglang/srt/other.py", 'Gauge(name="not:metrics_module")')
    assert sglang_metrics(str(wheel)) == {
        "sglang:token_usage": "gauge",
        "sglang:prompt_tokens_total": "counter",
        "sglang:requests_total": "counter",
        "sglang:time_to_first_token_seconds": "histogram",
    }


@pytest.mark.parametrize("release", shipped_releases())
def test_metric_list_matches_each_releases_wheel(release):
    from tools import sglang_flags
    from tools.metric_names import sglang_list

    # The wheel .ci/run fetches for the flag check (python tools/sglang_flags.py fetch).
    wheel = sglang_flags.wheel_for(release)
    if wheel is None:
        unavailable(Capability.SGLANG_WHEELS, f"no sglang {release} wheel in {sglang_flags.CACHE}")
    listed = (harness.ROOT / "facts" / "metrics" / f"sglang-{release}.txt").read_text()
    assert listed == sglang_list(release, str(wheel))


def test_every_shipped_release_has_a_metric_list():
    from sglang_platform.facts.metrics import releases

    assert releases() == shipped_releases()


@pytest.mark.parametrize(
    ("kind", "plural"),
    [("PodMonitor", "podmonitors"), ("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")],
)
def test_monitoring_objects_match_the_operator_crds(prod, kind, plural):
    import jsonschema

    # The operator of the kube-prometheus-stack chart prod installs (its appVersion, tools/crds.py).
    operator = crds.pinned(stack_values("prod").get("versions"))["prom"]
    (path,) = [p for p in crds.files_for("prom", operator) if p.name.endswith(f"-{plural}.yaml")]
    (definition,) = crds.documents(path)
    (version,) = [v for v in definition["spec"]["versions"] if v["name"] == "v1"]
    schema = version["schema"]["openAPIV3Schema"]
    # Draft7Validator without the metaschema check: the CRDs use Go's (?i) regex syntax Python rejects.
    validator = jsonschema.Draft7Validator({**schema, "required": ["spec"]})
    objects = [o for o in harness.kubernetes_objects(prod) if o["kind"] == kind]
    assert objects
    for obj in objects:
        validator.validate({"spec": obj["spec"]})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(
            {"spec": {**objects[0]["spec"], "podMetricsEndpoints": "x", "endpoints": "x", "groups": "x"}}
        )


def test_config_errors():
    def same_namespace(values):
        values["monitoring"]["namespace"] = values["namespace"]
        values["monitoring"]["prometheus"] = {"retention": "2 weeks"}

    result = run_with("dev", same_namespace, secrets={"grafanaAdminPassword": None})
    assert result.resources == []
    assert result.error is not None
    assert result.error.splitlines()[1:] == [
        "  - sglang-platform:monitoring.prometheus.retention: '2 weeks' does not match ^([0-9]+(ms|s|m|h|d|w|y))+$",
    ]
    result = run_with(
        "dev", lambda v: v["monitoring"].update(namespace=v["namespace"]), secrets={"grafanaAdminPassword": None}
    )
    assert result.error is not None
    assert result.error.splitlines()[1:] == [
        "  - sglang-platform:grafanaAdminPassword: required secret is not set (monitoring.enabled is true): run "
        "`pulumi config set --secret sglang-platform:grafanaAdminPassword <value>` or set "
        "sglang-platform:monitoring.enabled to false",
        "  - sglang-platform:monitoring.namespace: 'sglang-dev' is also the serving namespace; monitoring needs "
        "its own so the groups' NetworkPolicy can admit it by namespace",
    ]


def test_disabled_monitoring_needs_no_password_and_renders_nothing():
    def off(values):
        values["monitoring"] = {"enabled": False}
        del values["inferenceGroups"][0]["autoscaling"]  # the autoscaler would need a Prometheus

    result = run_with("prod", off, secrets={"apiKey": API_KEY, "grafanaAdminPassword": None})
    assert result.error is None
    assert not [r for r in harness.releases(result) if r["chart"] == "kube-prometheus-stack"]
    assert not [o for o in harness.kubernetes_objects(result) if o["kind"] in ("PodMonitor", "PrometheusRule")]
    policy = result.k8s_object("NetworkPolicy", "deepseek-r1-ingress")["spec"]["ingress"][1]["from"]
    assert not [c for c in policy if "namespaceSelector" in c]


def test_docs_explain_every_panel_and_alert():
    section = (harness.ROOT / "docs" / "ui-and-monitoring.md").read_text()
    rows = {line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")}
    panels = (
        *dashboard.SGLANG_PANELS,
        *dashboard.startup_panels(SglangMetrics.of(None)),
        *dashboard.STAGING_PANELS,
        *dashboard.GATEWAY_PANELS,
        *dashboard.GPU_PANELS,
    )
    for panel in panels:
        assert panel.title in rows, panel.title
    for group in alerts.rule_groups("ns", ["g"], Slo(), budgets={"g": 10}, staging=True, gateways=["g-gateway"]):
        for rule in group["rules"]:
            assert rule["alert"] in rows, rule["alert"]
