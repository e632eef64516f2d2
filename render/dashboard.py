"""The SGLang + GPU Grafana dashboard, built as code with grafana-foundation-sdk (Grafana 11.6 schema).

``SGLANG_PANELS``, ``startup_panels()``, ``STAGING_PANELS``, ``GATEWAY_PANELS`` and ``GPU_PANELS`` are the single
description of what is shown: the builder turns them into dashboard JSON for the pinned SGLang release
(``{itl}`` becomes that release's decode-latency histogram), the tests check every expression with promtool and
against that release's metric names, and a test keeps the panel table in docs/ui-and-monitoring.md in step with
the titles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from grafana_foundation_sdk.builders import dashboard, prometheus, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort
from grafana_foundation_sdk.models.dashboard import DataTransformerConfig as Transformation
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from ..facts.metrics import SglangMetrics
from .alerts import LWS_NAME, LWS_WORKER_INDEX
from .sglang_pods import GROUP_GATE

UID = "sglang-platform"
# Grafana replaces these before the query reaches Prometheus; tests substitute them the same way.
MODEL = 'model_name=~"$model"'
RATE = "$__rate_interval"
# Exported by the shipped 0.5.23 list (per phase: load_weight, kv_cache_allocation, ...), not by 0.5.1 or older.
STARTUP_METRIC = "sglang:startup_time_seconds"


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    # (PromQL with the placeholders {sel} = namespace + model filter ({sel, x="y"} adds matchers), {ns} =
    # namespace filter, {itl} = the release's inter-token latency histogram, legend; a table's legend is its
    # column title)
    queries: tuple[tuple[str, str], ...]
    kind: Literal["timeseries", "table"] = "timeseries"


def _quantiles(histogram: str, matchers: str = "") -> tuple[tuple[str, str], ...]:
    """p50/p90/p99 of a histogram; ``matchers``: more label matchers (``, pd_role="decode"``)."""
    sel = "{sel" + matchers + "}" if matchers else "{sel}"
    return tuple(
        (
            f"histogram_quantile({q}, sum by (model_name, le) (rate({histogram}_bucket{sel}[{RATE}])))",
            f"p{round(q * 100)} {{{{model_name}}}}",
        )
        for q in (0.5, 0.9, 0.99)
    )


SGLANG_PANELS = (
    Panel(
        "Request throughput",
        "Finished requests per second (sglang:num_requests_total).",
        "reqps",
        ((f"sum by (model_name) (rate(sglang:num_requests_total{{sel}}[{RATE}]))", "{{model_name}}"),),
    ),
    Panel(
        "Token throughput",
        "Prompt tokens read and tokens generated per second (prompt_tokens_total, generation_tokens_total), "
        "and the scheduler's own generation throughput gauge (gen_throughput).",
        "short",
        (
            (f"sum by (model_name) (rate(sglang:prompt_tokens_total{{sel}}[{RATE}]))", "prompt {{model_name}}"),
            (
                f"sum by (model_name) (rate(sglang:generation_tokens_total{{sel}}[{RATE}]))",
                "generated {{model_name}}",
            ),
            ("sum by (model_name) (sglang:gen_throughput{sel})", "scheduler gen tok/s {{model_name}}"),
        ),
    ),
    Panel(
        "Time to first token",
        "p50/p90/p99 from request arrival to the first streamed token (time_to_first_token_seconds): queueing "
        "plus prefill. The SLO alert watches the p99.",
        "s",
        _quantiles("sglang:time_to_first_token_seconds"),
    ),
    Panel(
        "Inter-token latency",
        "p50/p90/p99 time between two output tokens while decoding (inter_token_latency_seconds; SGLang "
        "0.4.3.post2 calls it time_per_output_token_seconds). Its inverse is the per-user streaming speed.",
        "s",
        _quantiles("{itl}"),
    ),
    Panel(
        "End-to-end request latency",
        "p50/p90/p99 from arrival to the last token (e2e_request_latency_seconds); long reasoning answers make "
        "minutes normal.",
        "s",
        _quantiles("sglang:e2e_request_latency_seconds"),
    ),
    Panel(
        "Running and queued requests",
        "Requests in the running batch (num_running_reqs) and waiting for admission (num_queue_reqs). A queue "
        "that keeps growing means the group is saturated.",
        "short",
        (
            ("sum by (model_name) (sglang:num_running_reqs{sel})", "running {{model_name}}"),
            ("sum by (model_name) (sglang:num_queue_reqs{sel})", "queued {{model_name}}"),
        ),
    ),
    Panel(
        "Serving groups and queue depth",
        "Groups with a leader pod (kube-state-metrics) and the group count the autoscaler wants (its KEDA HPA's "
        "desired replicas), next to the queue they react to: the queue should fall some minutes after a group "
        "is added, once its weights are loaded.",
        "short",
        (
            (
                f'count by ({LWS_NAME}) (kube_pod_labels{{{{ns}}, {LWS_WORKER_INDEX}="0"}})',
                f"groups {{{{{LWS_NAME}}}}}",
            ),
            (
                "sum by (horizontalpodautoscaler) (kube_horizontalpodautoscaler_status_desired_replicas{{ns}, "
                'horizontalpodautoscaler=~"keda-hpa-.*"})',
                "wanted {{horizontalpodautoscaler}}",
            ),
            ("sum by (model_name) (sglang:num_queue_reqs{sel})", "queued {{model_name}}"),
        ),
    ),
    Panel(
        "KV-cache usage",
        "Fraction of KV-cache token slots in use (token_usage). Near 1 new requests wait or running ones are "
        "retracted.",
        "percentunit",
        (("max by (model_name) (sglang:token_usage{sel})", "{{model_name}}"),),
    ),
    Panel(
        "Prefix-cache hit rate",
        "Share of prompt tokens served from the radix (prefix) cache (cache_hit_rate): shared system prompts "
        "and multi-turn chats raise it and cut prefill work.",
        "percentunit",
        (("max by (model_name) (sglang:cache_hit_rate{sel})", "{{model_name}}"),),
    ),
)


def _ns(metric: str, *matchers: str) -> str:
    """``metric`` filtered to the dashboard's namespace (the {ns} placeholder) and ``matchers``."""
    return metric + "{{ns}" + "".join(f", {m}" for m in matchers) + "}"


# A group's pods (kube-state-metrics exports the allow-listed LWS labels on kube_pod_labels).
GROUP_PODS = _ns("kube_pod_labels", f'{LWS_NAME}!=""')
GROUP_LABELS = f"{LWS_NAME}, {LWS_WORKER_INDEX}"


def _per_group_pod(expr: str) -> str:
    """A per-pod value (labels namespace, pod) labelled with the pod's group and worker index."""
    return (
        f"{expr} * on (namespace, pod) group_left ({GROUP_LABELS}) "
        f"max by (namespace, pod, {GROUP_LABELS}) ({GROUP_PODS})"
    )


def _since_created(timestamp: str) -> str:
    """Seconds from a group pod's creation to ``timestamp`` (a kube-state-metrics per-pod time)."""
    return _per_group_pod(
        f"(max by (namespace, pod) ({timestamp}) - max by (namespace, pod) ({_ns('kube_pod_created')}))"
    )


def startup_panels(metrics: SglangMetrics) -> tuple[Panel, ...]:
    """The cold-start panels; the weight-load column only where the pinned release exports its duration."""
    columns = [
        (_since_created(_ns("kube_pod_status_scheduled_time")), "Scheduled after"),
        # Initialized: every init container finished, i.e. the wait-for-weights gate found its revision (and,
        # in a multi-node group staged per node, the wait-for-group gate saw every pod of the group do so).
        (_since_created(_ns("kube_pod_status_initialized_time")), "Weights present after"),
        (_since_created(_ns("kube_pod_container_state_started", 'container=~"sglang-.*"')), "SGLang started after"),
    ]
    if metrics.has(STARTUP_METRIC):
        load_weight = _ns(STARTUP_METRIC, 'phase="load_weight"')
        load = f"max by (namespace, pod) ({load_weight})"
        columns.append((_per_group_pod(load), "Weight load took"))
    columns.append((_since_created(_ns("kube_pod_status_ready_time")), "Ready after"))
    ready_true = _ns("kube_pod_status_ready", 'condition="true"')
    ready = f"({ready_true} == 1)"
    scheduled, initialized = _ns("kube_pod_status_scheduled_time"), _ns("kube_pod_status_initialized_time")
    # A pod whose own weights are in place, held by its group gate until the group's other pods have theirs.
    gate_running = _ns("kube_pod_init_container_status_running", f'container="{GROUP_GATE}"')
    group_gate = f"({gate_running} == 1)"
    by_group = f"count by ({LWS_NAME})"
    legend = "{{" + LWS_NAME + "}}"
    return (
        Panel(
            "Cold-start timeline",
            "Per pod of each group, time from its creation to: scheduled (gang admission and GPUs), weights "
            "present (the wait-for-weights gate found its revision on the node; in a multi-node group staged per "
            "node, also every other pod of the group: its wait-for-group gate), SGLang started, ready (/health "
            "answers: weights loaded, KV cache allocated, CUDA graphs captured). Releases up to 0.5.1 export "
            "nothing that splits loading from ready (the leader logs 'Load weight end'); with a release that "
            "exports sglang:startup_time_seconds a 'Weight load took' column appears. The startup alert "
            "fires when a pod is not ready within its group's startup budget.",
            "s",
            tuple(columns),
            kind="table",
        ),
        Panel(
            "Pods starting, by phase",
            "The group pods in each phase of a start: waiting to be scheduled, waiting for the weights on their "
            "node, waiting for the group (their node has the weights, another pod's node does not yet: the "
            "wait-for-group gate), loading (weights present, not yet ready), ready. Where a line stays up is "
            "where the start spends its time.",
            "short",
            (
                (f"{by_group} ({GROUP_PODS} unless on (namespace, pod) {scheduled})", f"not scheduled {legend}"),
                (
                    f"{by_group} (({GROUP_PODS} and on (namespace, pod) {scheduled}) "
                    f"unless on (namespace, pod) {initialized} unless on (namespace, pod) {group_gate})",
                    f"waiting for weights {legend}",
                ),
                (
                    f"{by_group} (({GROUP_PODS} and on (namespace, pod) {group_gate}) "
                    f"unless on (namespace, pod) {initialized})",
                    f"waiting for the group {legend}",
                ),
                (
                    f"{by_group} (({GROUP_PODS} and on (namespace, pod) {initialized}) unless on (namespace, pod) "
                    f"{ready})",
                    f"loading {legend}",
                ),
                (f"{by_group} ({GROUP_PODS} and on (namespace, pod) {ready})", f"ready {legend}"),
            ),
        ),
    )


STAGING_PANELS = (
    Panel(
        "Weights staged per node",
        "Share of the weights on each node (bytes written, partial files included, over what the source lists), "
        "from the staging DaemonSet (sglang_platform_weights_*); 100% once verified and switched in.",
        "percentunit",
        (
            (
                f"max by (group, node) ({_ns('sglang_platform_weights_done_bytes')}) / "
                f"max by (group, node) ({_ns('sglang_platform_weights_expected_bytes')})",
                "{{group}} on {{node}}",
            ),
        ),
    ),
    Panel(
        "Weights download rate",
        "Bytes per second each node's stager writes (sglang_platform_weights_download_rate_bytes); 0 once complete.",
        "Bps",
        ((f"sum by (group, node) ({_ns('sglang_platform_weights_download_rate_bytes')})", "{{group}} on {{node}}"),),
    ),
)

# sglang-router 0.3.2's series (facts/metrics/sgl-model-gateway.txt); the gateway's PodMonitor adds the
# labels gateway (its name) and model_name (the served model).
GATEWAY_PANELS = (
    Panel(
        "Gateway requests and upstream errors",
        "Requests the gateway routed per second (smg_router_requests_total), and attempts at a group that "
        "answered 5xx (smg_router_upstream_responses_total, retries included): the error-rate alert's inputs.",
        "reqps",
        (
            (f"sum by (gateway) (rate(smg_router_requests_total{{sel}}[{RATE}]))", "routed {{gateway}}"),
            (
                f'sum by (gateway) (rate(smg_router_upstream_responses_total{{sel, status_code=~"5.."}}[{RATE}]))',
                "upstream 5xx {{gateway}}",
            ),
        ),
    ),
    Panel(
        "Gateway request latency",
        "p50/p99 of a successful routed request through the gateway, retries included "
        "(smg_router_request_duration_seconds; for a streamed answer, until the group starts the stream).",
        "s",
        tuple(
            (
                f"histogram_quantile({q}, sum by (gateway, le) "
                f"(rate(smg_router_request_duration_seconds_bucket{{sel}}[{RATE}])))",
                f"p{round(q * 100)} {{{{gateway}}}}",
            )
            for q in (0.5, 0.99)
        ),
    ),
    Panel(
        "Gateway workers: registered and healthy",
        "Leaders the gateway discovered (smg_worker_pool_size) and those passing its health check "
        "(smg_worker_health = 1). A group the autoscaler adds appears here once its leader is ready.",
        "short",
        (
            ("sum by (gateway) (smg_worker_pool_size{sel})", "registered {{gateway}}"),
            ("count by (gateway) (smg_worker_health{sel} == 1)", "healthy {{gateway}}"),
        ),
    ),
    Panel(
        "Requests in flight per worker",
        "Requests the gateway has running on each leader (smg_worker_requests_active): how the policy spreads "
        "the load; cache_aware keeps a prompt prefix on one group until the load is unbalanced.",
        "short",
        (("sum by (gateway, worker) (smg_worker_requests_active{sel})", "{{gateway}} {{worker}}"),),
    ),
    Panel(
        "Circuit breakers and retries",
        "Breaker state per leader (smg_worker_cb_state: 0 closed, 1 open, 2 half-open), retries per second "
        "(smg_worker_retries_total) and requests that failed after every retry (smg_worker_retries_exhausted_total).",
        "short",
        (
            ("max by (gateway, worker) (smg_worker_cb_state{sel})", "breaker {{gateway}} {{worker}}"),
            (f"sum by (gateway) (rate(smg_worker_retries_total{{sel}}[{RATE}]))", "retries/s {{gateway}}"),
            (
                f"sum by (gateway) (rate(smg_worker_retries_exhausted_total{{sel}}[{RATE}]))",
                "exhausted/s {{gateway}}",
            ),
        ),
    ),
)


def pd_panels(metrics: SglangMetrics) -> tuple[Panel, ...]:
    """The row of disaggregated services, split by role (the pd_role label their PodMonitors add), with the
    series the release has: first tokens from prefill, token pace and KV cache from decode, the PD queues and
    failed transfers (0.4.7 and later), the KV transfer's latency (0.5.23)."""

    def has(*names: str) -> list[str]:
        return [n for n in names if metrics.has(n)]

    queues = [
        ('sum by (model_name, pd_role) (sglang:num_queue_reqs{sel, pd_role!=""})', "waiting {{pd_role}} {{model_name}}")
    ]
    # Prefill's requests waiting for decode to take their KV cache, decode's waiting for room and for the KV
    # cache to arrive (0.4.7-0.5.1 spell the prefill one "infight").
    for name, legend in (
        ("sglang:num_prefill_bootstrap_queue_reqs", "prefill bootstrapping"),
        ("sglang:num_prefill_inflight_queue_reqs", "prefill sending KV"),
        ("sglang:num_prefill_infight_queue_reqs", "prefill sending KV"),
        ("sglang:num_decode_prealloc_queue_reqs", "decode waiting for KV room"),
        ("sglang:num_decode_transfer_queue_reqs", "decode receiving KV"),
    ):
        queues += [(f"sum by (model_name) ({n}{{sel}})", f"{legend} {{{{model_name}}}}") for n in has(name)]
    panels = [
        Panel(
            "Prefill: time to first token",
            "p50/p90/p99 time to first token on the prefill role (time_to_first_token_seconds of its pods): "
            "its queue plus the prefill itself. The TTFT alert watches this p99 for disaggregated models.",
            "s",
            _quantiles("sglang:time_to_first_token_seconds", ', pd_role="prefill"'),
        ),
        Panel(
            "Decode: inter-token latency",
            "p50/p90/p99 time between two output tokens on the decode role: its batch size and GPUs set it "
            "(the decode inter-token latency alert watches the p99).",
            "s",
            _quantiles("{itl}", ', pd_role="decode"'),
        ),
        Panel(
            "Prefill and decode queues",
            "Requests waiting on each role, and where the release reports them, the hand-over queues: prefill "
            "waiting for decode and sending the KV cache, decode waiting for room and receiving it.",
            "short",
            tuple(queues),
        ),
        Panel(
            "KV-cache usage by role",
            "token_usage of each role: decode's holds the running answers (its autoscaler's signal); prefill's "
            "only the prompts it has not handed over yet.",
            "percentunit",
            (('max by (model_name, pd_role) (sglang:token_usage{sel, pd_role!=""})', "{{pd_role}} {{model_name}}"),),
        ),
    ]
    failures = [
        (f"sum by (model_name) (rate({n}{{sel}}[{RATE}]))", f"{legend} {{{{model_name}}}}")
        for n, legend in (
            ("sglang:num_transfer_failed_reqs_total", "failed transfers/s"),
            ("sglang:num_bootstrap_failed_reqs_total", "failed bootstraps/s"),
        )
        if metrics.has(n)
    ]
    if failures:
        panels.append(
            Panel(
                "KV transfer failures",
                "Requests whose KV cache did not reach decode (transfer) or whose decode could not reach the "
                "prefill server's bootstrap port (bootstrap), per second: each such request fails.",
                "reqps",
                tuple(failures),
            )
        )
    if metrics.has("sglang:kv_transfer_latency_ms"):
        panels.append(
            Panel(
                "KV transfer latency",
                "p50/p99 time to move one request's KV cache from prefill to decode (kv_transfer_latency_ms).",
                "ms",
                tuple(
                    (
                        f"histogram_quantile({q}, sum by (model_name, le) "
                        f"(rate(sglang:kv_transfer_latency_ms_bucket{{sel}}[{RATE}])))",
                        f"p{round(q * 100)} {{{{model_name}}}}",
                    )
                    for q in (0.5, 0.99)
                ),
            )
        )
    return tuple(panels)


GPU_PANELS = (
    Panel(
        "GPU utilisation",
        "Share of time each GPU was busy (DCGM_FI_DEV_GPU_UTIL), from the GPU Operator's dcgm-exporter.",
        "percent",
        (("avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)", "{{Hostname}} GPU {{gpu}}"),),
    ),
    Panel(
        "GPU memory used",
        "Framebuffer memory in use per GPU (DCGM_FI_DEV_FB_USED / (FB_USED + FB_FREE)); SGLang reserves most "
        "of it up front for weights and KV cache (memFractionStatic), so high and flat is normal.",
        "percentunit",
        (
            (
                "sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED) / "
                "(sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED) + sum by (Hostname, gpu) (DCGM_FI_DEV_FB_FREE))",
                "{{Hostname}} GPU {{gpu}}",
            ),
        ),
    ),
    Panel(
        "GPU temperature",
        "GPU die temperature in °C (DCGM_FI_DEV_GPU_TEMP); the heat alert fires above "
        "monitoring.slo.gpuTemperatureCelsius.",
        "celsius",
        (("max by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP)", "{{Hostname}} GPU {{gpu}}"),),
    ),
)


def expressions(namespace: str, sglang_release: str | None = None, pd: bool = False) -> list[str]:
    """Every PromQL expression of the dashboard for the SGLang release (None: the newest with a metric list),
    as Grafana sends it before variable substitution; ``pd``: with the row of disaggregated services."""
    metrics = SglangMetrics.of(sglang_release)
    panels = (
        *SGLANG_PANELS,
        *(pd_panels(metrics) if pd else ()),
        *startup_panels(metrics),
        *STAGING_PANELS,
        *GATEWAY_PANELS,
        *GPU_PANELS,
    )
    return [_expr(q, namespace, metrics) for p in panels for q, _ in p.queries]


def _expr(query: str, namespace: str, metrics: SglangMetrics) -> str:
    sel = f'namespace="{namespace}", {MODEL}'
    return (
        query.replace("{sel}", f"{{{sel}}}")
        .replace("{sel,", f"{{{sel},")
        .replace("{ns}", f'namespace="{namespace}"')
        .replace("{itl}", metrics.inter_token_latency)
    )


def _table(p: Panel, namespace: str, datasource: DataSourceRef, metrics: SglangMetrics) -> table.Panel:
    """Instant queries, one column each, merged into one row per pod."""
    panel = table.Panel().title(p.title).description(p.description).unit(p.unit).height(8).span(24)
    panel = panel.datasource(datasource)
    rename = {LWS_NAME: "Group", LWS_WORKER_INDEX: "Worker", "pod": "Pod"}
    for i, (query, column) in enumerate(p.queries):
        ref = chr(ord("A") + i)
        expr = _expr(query, namespace, metrics)
        panel = panel.with_target(prometheus.Dataquery().expr(expr).instant().format(PromQueryFormat.TABLE).ref_id(ref))
        rename[f"Value #{ref}"] = column
    return panel.with_transformation(Transformation(id_val="merge", options={})).with_transformation(
        Transformation(
            id_val="organize",
            options={"excludeByName": {"Time": True, "namespace": True}, "renameByName": rename},
        )
    )


def _panel(
    p: Panel, namespace: str, datasource: DataSourceRef, metrics: SglangMetrics
) -> timeseries.Panel | table.Panel:
    if p.kind == "table":
        return _table(p, namespace, datasource, metrics)
    panel = (
        timeseries.Panel()
        .title(p.title)
        .description(p.description)
        .unit(p.unit)
        .min(0)
        .height(8)
        .span(12)
        .datasource(datasource)
    )
    for i, (query, legend) in enumerate(p.queries):
        panel = panel.with_target(
            prometheus.Dataquery()
            .expr(_expr(query, namespace, metrics))
            .legend_format(legend)
            .ref_id(chr(ord("A") + i))
        )
    return panel


def build(
    namespace: str,
    gpu: bool = True,
    staging: bool = False,
    gateway: bool = False,
    sglang_release: str | None = None,
    pd: bool = False,
) -> dict:
    """The dashboard as a JSON-ready dict for the SGLang groups of ``namespace``, with the series names of
    ``sglang_release`` (None: the newest release with a metric list); ``staging``: some group's weights are
    staged by a DaemonSet (its panels are added); ``gateway``: the groups have gateways (their row is added);
    ``pd``: with the row of disaggregated services (their cold starts show per role: each role is a group)."""
    metrics = SglangMetrics.of(sglang_release)
    datasource = DataSourceRef(type_val="prometheus", uid="${datasource}")
    dash = (
        dashboard.Dashboard("SGLang inference")
        .uid(UID)
        .tags(["sglang", "sglang-platform"])
        .refresh("30s")
        .time("now-3h", "now")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            dashboard.QueryVariable("model")
            .label("Model")
            .datasource(datasource)
            .query(f'label_values(sglang:num_requests_total{{namespace="{namespace}"}}, model_name)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
        .with_row(dashboard.Row("SGLang: traffic, latency, capacity"))
    )
    for p in SGLANG_PANELS:
        dash = dash.with_panel(_panel(p, namespace, datasource, metrics))
    if pd:
        dash = dash.with_row(dashboard.Row("Prefill/decode disaggregation: by role"))
        for p in pd_panels(metrics):
            dash = dash.with_panel(_panel(p, namespace, datasource, metrics))
    dash = dash.with_row(dashboard.Row("Cold starts: where a group's start spends its time"))
    for p in (*startup_panels(metrics), *(STAGING_PANELS if staging else ())):
        dash = dash.with_panel(_panel(p, namespace, datasource, metrics))
    if gateway:
        dash = dash.with_row(dashboard.Row("SGLang gateway: routing, workers, failures"))
        for p in GATEWAY_PANELS:
            dash = dash.with_panel(_panel(p, namespace, datasource, metrics))
    if gpu:
        dash = dash.with_row(dashboard.Row("GPUs (DCGM)"))
        for p in GPU_PANELS:
            dash = dash.with_panel(_panel(p, namespace, datasource, metrics))
    return json.loads(json.dumps(dash.build(), cls=JSONEncoder))
