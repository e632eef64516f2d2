"""SLO and GPU-health alerting rules (PrometheusRule groups), built from the stack's SLO settings.

Pure functions of plain values, so tests can feed the very rules the stack deploys to ``promtool``.
Metric names are those every shipped SGLang release exposes (facts/metrics/sglang-<release>.txt),
dcgm-exporter's, kube-state-metrics', the weights stager's and the gateway's; the tests keep them to those lists
and run promtool per release.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..config.monitoring import Slo
from ..facts.lws import LWS_NAME_LABEL, LWS_WORKER_INDEX_LABEL
from ..facts.metrics import SglangMetrics


def ksm_label(label: str) -> str:
    """The series label kube-state-metrics gives a pod label (``kube_pod_labels``)."""
    return "label_" + re.sub(r"[^A-Za-z0-9_]", "_", label)


LWS_NAME = ksm_label(LWS_NAME_LABEL)
LWS_WORKER_INDEX = ksm_label(LWS_WORKER_INDEX_LABEL)
# kube-state-metrics exports pod labels only when allow-listed; the no-ready-leader rule needs these two.
KSM_POD_LABELS = f"pods=[{LWS_NAME_LABEL},{LWS_WORKER_INDEX_LABEL}]"


# The one PodMonitor of every gateway's metrics port (its series carry gateway= and model_name= labels).
GATEWAY_MONITOR = "sglang-gateway-metrics"
# The label the PodMonitor of a role of a disaggregated service puts on its series: prefill or decode.
PD_ROLE = "pd_role"


def metrics_monitor_name(group: str) -> str:
    return f"{group}-metrics"


def scrape_job(namespace: str, group: str) -> str:
    """The job label prometheus-operator gives a PodMonitor's targets: <namespace>/<name>."""
    return f"{namespace}/{metrics_monitor_name(group)}"


def _num(value: float) -> str:
    return format(value, "g")


def sglang_rules(namespace: str, groups: Sequence[str], slo: Slo, scraped: Sequence[str]) -> list[dict]:
    ns = f'namespace="{namespace}"'
    by = "namespace, model_name"
    rules: list[dict] = [
        {
            "alert": "SGLangTTFTHigh",
            # TTFT buckets in 0.4.3.post2 are 0.1, 0.25, 0.5, ...: a 0.2 s target is interpolated inside the
            # 0.1-0.25 bucket, so the alert is as exact as those buckets allow. No traffic gives NaN: silent.
            # A disaggregated model's first token is prefill's (its decode role's series are left out).
            "expr": f"histogram_quantile(0.99, sum by ({by}, le) "
            f'(rate(sglang:time_to_first_token_seconds_bucket{{{ns}, {PD_ROLE}!="decode"}}[{slo.window}]))) '
            f"> {_num(slo.ttft_p99_seconds)}",
            "for": slo.for_duration,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Time to first token p99 of {{ $labels.model_name }} is {{ $value | humanizeDuration }}",
                "description": f"The p99 TTFT over {slo.window} is above the {_num(slo.ttft_p99_seconds)} s SLO "
                "(sglang-platform:monitoring.slo.ttftP99Seconds). Check the queue and KV-cache panels: "
                "a long queue or a full KV cache delays prefill.",
            },
        },
        {
            "alert": "SGLangQueueBacklogGrowing",
            "expr": f"sum by ({by}) (sglang:num_queue_reqs{{{ns}}}) > {slo.queue_backlog_requests} "
            f"and sum by ({by}) (deriv(sglang:num_queue_reqs{{{ns}}}[{slo.window}])) > 0",
            "for": slo.for_duration,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.model_name }} has {{ $value }} queued requests and the queue keeps growing",
                "description": "Requests arrive faster than the groups serve them. With autoscaling, check that "
                "the autoscaler is adding a group (it may be at maxReplicas, or waiting for GPUs in the Volcano "
                "queue); without it, raise inferenceGroups[].replicas or shed load. Answers slow down until the "
                "queue drains.",
            },
        },
        {
            "alert": "SGLangKVCacheNearlyFull",
            "expr": f"max by ({by}) (sglang:token_usage{{{ns}}}) > {_num(slo.kv_cache_usage_ratio)}",
            "for": slo.for_duration,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "KV cache of {{ $labels.model_name }} is {{ $value | humanizePercentage }} full",
                "description": "With the KV cache full, SGLang queues new requests or retracts running ones. "
                "Consider memFractionStatic, kvCacheDtype fp8, a shorter contextLength or more replicas.",
            },
        },
    ]
    for group in groups:
        leaders = f'kube_pod_labels{{{ns}, {LWS_NAME}="{group}", {LWS_WORKER_INDEX}="0"}}'
        rules.append(
            {
                "alert": "SGLangNoReadyLeader",
                # `or vector(0)`: when no leader pod exists at all the product is empty, which must alert too.
                "expr": f'(sum(kube_pod_status_ready{{{ns}, condition="true"}} '
                f"* on (namespace, pod) group_left () {leaders}) or vector(0)) < 1",
                "for": slo.for_duration,
                "labels": {"severity": "critical", "namespace": namespace, "group": group},
                "annotations": {
                    "summary": f"Inference group {group} has no ready leader: its model is not being served",
                    "description": "No leader pod of the group passes its readiness probe (/health). Expected "
                    "while the weights load after a (re)start; otherwise see `kubectl -n "
                    f"{namespace} get pods -l leaderworkerset.sigs.k8s.io/name={group}` and the leader's logs.",
                },
            }
        )
        if group not in scraped:
            continue
        rules.append(
            {
                "alert": "SGLangMetricsDown",
                "expr": f'up{{{ns}, job="{scrape_job(namespace, group)}"}} == 0',
                "for": slo.for_duration,
                "labels": {"severity": "warning", "group": group},
                "annotations": {
                    "summary": f"Prometheus cannot scrape /metrics of {group} ({{{{ $labels.pod }}}})",
                    "description": "While the scrape fails the latency, queue and KV-cache alerts cannot fire. "
                    "A 401 means the PodMonitor's bearer token differs from the group's --api-key.",
                },
            }
        )
    return rules


def startup_rules(namespace: str, budgets: Mapping[str, int], stagers: Mapping[str, str] | None = None) -> list[dict]:
    """A start past its budget: a group pod not ready this long after it was created (``budgets``: minutes by
    group, the startup probe's budget; each role of a disaggregated service is a group of its own, with its own
    budget). Measured from creation, so scheduling and waiting for weights count: it fires no later than the
    probe would restart the group, whose budget starts with the container. ``stagers``: the weights DaemonSet
    by group where it is not ``<group>-weights`` (the roles of a disaggregated service share their service's)."""
    ns = f'namespace="{namespace}"'
    rules = []
    for group, minutes in budgets.items():
        stager = (stagers or {}).get(group, f"{group}-weights")
        pods = f'kube_pod_labels{{{ns}, {LWS_NAME}="{group}"}}'
        rules.append(
            {
                "alert": "SGLangStartOverBudget",
                "expr": f"max by (namespace, pod) (time() - kube_pod_created{{{ns}}}) > {minutes * 60} "
                f"and on (namespace, pod) {pods} "
                f'unless on (namespace, pod) (kube_pod_status_ready{{{ns}, condition="true"}} == 1)',
                "for": "1m",
                "labels": {"severity": "warning", "group": group},
                "annotations": {
                    "summary": f"Pod {{{{ $labels.pod }}}} of {group} has been starting for "
                    f"{{{{ $value | humanizeDuration }}}}, past its {minutes} minute budget",
                    "description": "The dashboard's cold-start timeline shows where the time goes: not scheduled "
                    "(the gang waits for GPUs: `kubectl describe podgroup`), waiting for weights (the node's copy "
                    f"is still staging: `kubectl -n {namespace} logs daemonset/{stager}`), waiting for the group "
                    "(a multi-node group staged per node: this pod's node has the weights, another pod's node is "
                    "still staging; `kubectl logs <pod> -c wait-for-group` names it, and this pod holds its GPUs "
                    "until then without loading), or loading (the leader's log). The startup probe restarts the "
                    "group once SGLang itself has used the budget; raise probes.startupTimeoutMinutes if loads "
                    "legitimately take longer. A group that landed on a node that just joined waits for that "
                    "node's whole copy: to free the GPUs sooner, cordon the node until its stager is Ready and "
                    "delete the group's leader pod, which recreates the group elsewhere.",
                },
            }
        )
    return rules


def staging_rules(namespace: str, slo: Slo) -> list[dict]:
    """The weights staging DaemonSet: a node whose copy stopped growing, or keeps failing."""
    ns = f'namespace="{namespace}"'
    by = "namespace, group, node"
    return [
        {
            "alert": "ModelWeightsStagingStalled",
            "expr": f"max by ({by}) (sglang_platform_weights_complete{{{ns}}}) == 0 "
            f"and on ({by}) max by ({by}) (changes(sglang_platform_weights_done_bytes{{{ns}}}[15m])) == 0",
            "for": slo.for_duration,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "The weights of {{ $labels.group }} on {{ $labels.node }} stopped growing",
                "description": "The node's stager has written nothing for 15 minutes and its copy is not complete: "
                f"see `kubectl -n {namespace} logs` of its pod (errors are retried with a backoff up to 10 "
                "minutes; a hub that stopped answering or a full disk stall it). Groups placed on that node "
                "wait in their wait-for-weights init container.",
            },
        },
        {
            "alert": "ModelWeightsStagingFailing",
            "expr": f"sum by ({by}) (increase(sglang_platform_weights_errors_total{{{ns}}}[1h])) >= 3",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Staging the weights of {{ $labels.group }} on {{ $labels.node }} failed "
                "{{ $value }} times in the last hour",
                "description": "Each failed attempt is logged by the stager with its cause (credentials, a "
                "missing revision, no room beside the kept revisions, the network) and retried.",
            },
        },
    ]


def gpu_rules(slo: Slo) -> list[dict]:
    by = "Hostname, gpu, UUID"
    return [
        {
            "alert": "GPUXidError",
            "expr": f"max by ({by}) (DCGM_FI_DEV_XID_ERRORS) > 0",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} reported XID {{ $value }}",
                "description": "An XID is a driver-reported GPU error (e.g. 79: fallen off the bus, 48/63/64: "
                "ECC, 74: NVLink). The SGLang group on that node usually hangs or restarts; see NVIDIA's XID "
                "catalogue and drain the node if it repeats.",
            },
        },
        {
            "alert": "GPUTemperatureHigh",
            "expr": f"max by ({by}) (DCGM_FI_DEV_GPU_TEMP) > {slo.gpu_temperature_celsius}",
            "for": slo.for_duration,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "GPU {{ $labels.gpu }} on {{ $labels.Hostname }} is at {{ $value }} °C",
                "description": f"Above {slo.gpu_temperature_celsius} °C "
                "(sglang-platform:monitoring.slo.gpuTemperatureCelsius) the GPU throttles its clocks and "
                "throughput drops; check cooling and fans.",
            },
        },
    ]


def gateway_rules(namespace: str, gateways: Sequence[str], slo: Slo) -> list[dict]:
    """The gateways' health (docs/gateway.md): smg_* series of sglang-router 0.3.2
    (facts/metrics/sgl-model-gateway.txt) and their Deployments' availability (kube-state-metrics)."""
    ns = f'namespace="{namespace}"'
    by = "namespace, gateway, model_name"
    upstream = f"smg_router_upstream_responses_total{{{ns}"
    rules: list[dict] = []
    for gateway in gateways:
        rules.append(
            {
                "alert": "SGLangGatewayUnavailable",
                # Its readiness probe (/readiness) passes only while a discovered leader is healthy, so no
                # available replica means: no healthy group of the model, or the gateway itself is down.
                # `or vector(0)`: a missing Deployment alerts too.
                "expr": f'(sum(kube_deployment_status_replicas_available{{{ns}, deployment="{gateway}"}}) '
                "or vector(0)) < 1",
                "for": slo.for_duration,
                "labels": {"severity": "critical", "namespace": namespace, "gateway": gateway},
                "annotations": {
                    "summary": f"Gateway {gateway} has no ready replica: clients of its model get no answer",
                    "description": "The gateway is ready only while one of the leaders it discovered passes its "
                    "health check. Expected while the groups load their weights after a (re)start; otherwise see "
                    f"SGLangNoReadyLeader and `kubectl -n {namespace} logs deploy/{gateway}` (discovery, health "
                    "checks).",
                },
            }
        )
    if not gateways:
        return rules
    rules += [
        {
            "alert": "SGLangGatewayErrorRateHigh",
            # Each attempt the gateway makes at a group, retries included (smg_http_responses_total would
            # also count the kubelet's probes of /readiness).
            "expr": f'sum by ({by}) (rate({upstream}, status_code=~"5.."}}[{slo.window}])) '
            f"/ sum by ({by}) (rate({upstream}}}[{slo.window}])) > {_num(slo.gateway_error_ratio)}",
            "for": slo.for_duration,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $value | humanizePercentage }} of {{ $labels.gateway }}'s requests to the groups fail",
                "description": f"More than {_num(slo.gateway_error_ratio)} of the attempts over {slo.window} "
                "answered 5xx (sglang-platform:monitoring.slo.gatewayErrorRatio). 503 with no healthy group, "
                "502/504 from a group that restarts or times out (gateway.requestTimeoutSeconds); see the "
                "gateway panels and the groups' logs.",
            },
        },
        {
            "alert": "SGLangGatewayCircuitOpen",
            # Counted from the transitions, not the smg_worker_cb_state gauge, which keeps the last value of a
            # group the gateway has since dropped.
            "expr": "sum by (namespace, gateway, model_name, worker) "
            f'(increase(smg_worker_cb_transitions_total{{{ns}, to="open"}}[{slo.window}])) > 0',
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "{{ $labels.gateway }} stopped sending to {{ $labels.worker }}: its circuit breaker opened",
                "description": "The group's leader at that address failed gateway.circuitBreaker.failureThreshold "
                "requests in a row; the gateway routes around it and probes it again after "
                "circuitBreaker.timeoutSeconds. The other groups carry its load meanwhile. Look at that leader's "
                "log.",
            },
        },
        {
            "alert": "SGLangGatewayMetricsDown",
            "expr": f'up{{{ns}, job="{namespace}/{GATEWAY_MONITOR}"}} == 0',
            "for": slo.for_duration,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Prometheus cannot scrape the gateway metrics of {{ $labels.pod }}",
                "description": "While the scrape fails the gateway's error and circuit-breaker alerts cannot "
                "fire. The metrics port is not behind the API key; check the gateway's NetworkPolicy admits the "
                "monitoring namespace.",
            },
        },
    ]
    return rules


def decode_itl_rule(metrics: SglangMetrics, decode: str, by: str, itl: float, slo: Slo) -> dict:
    return {
        "alert": "SGLangDecodeInterTokenLatencyHigh",
        "expr": f"histogram_quantile(0.99, sum by ({by}, le) "
        f"(rate({metrics.inter_token_latency}_bucket{{{decode}}}[{slo.window}]))) > {_num(itl)}",
        "for": slo.for_duration,
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Decode of {{ $labels.model_name }} streams tokens {{ $value | humanizeDuration }} apart (p99)",
            "description": f"The p99 inter-token latency of the decode role over {slo.window} is above "
            f"{_num(itl)} s (sglang-platform:monitoring.slo.itlP99Seconds). Decode is short: its batch is too "
            "large for its GPUs (maxRunningRequests, cudaGraphMaxBs) or it needs more groups (its autoscaler's "
            "KV-cache and latency targets).",
        },
    }


def disaggregation_rules(namespace: str, slo: Slo, sglang_release: str | None = None) -> list[dict]:
    """The roles of disaggregated services (docs/disaggregation.md), with the series the pinned release has:
    decode's inter-token latency (every release, when the SLO sets one), failed KV transfers and bootstraps
    (0.4.7 and later), the KV transfer's latency (0.5.23)."""
    metrics = SglangMetrics.of(sglang_release)
    ns = f'namespace="{namespace}"'
    by = "namespace, model_name"
    decode = f'{ns}, {PD_ROLE}="decode"'
    rules: list[dict] = []
    if (itl := slo.itl_p99_seconds) is not None:
        rules.append(decode_itl_rule(metrics, decode, by, itl, slo))
    failures = [
        name
        for name in ("sglang:num_transfer_failed_reqs_total", "sglang:num_bootstrap_failed_reqs_total")
        if metrics.has(name)
    ]
    if failures:
        rules.append(
            {
                "alert": "SGLangKVTransferFailing",
                "expr": " or ".join(f"sum by ({by}) (increase({name}{{{ns}}}[{slo.window}])) > 0" for name in failures),
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "{{ $labels.model_name }}: {{ $value }} requests failed to hand their KV cache from "
                    "prefill to decode",
                    "description": "Failed KV transfers or bootstraps (decode could not reach a prefill "
                    "server's bootstrap port, or the RDMA transfer failed). Each such request fails. Look at the "
                    "decode and prefill logs for Mooncake/NIXL errors: a wrong network.gidIndex, missing RDMA "
                    "devices or IPC_LOCK, a NetworkPolicy between the roles.",
                },
            }
        )
    if metrics.has("sglang:kv_transfer_latency_ms"):
        rules.append(
            {
                "alert": "SGLangKVTransferSlow",
                "expr": f"histogram_quantile(0.99, sum by ({by}, le) "
                f"(rate(sglang:kv_transfer_latency_ms_bucket{{{ns}}}[{slo.window}]))) "
                f"> {_num(slo.kv_transfer_p99_milliseconds)}",
                "for": slo.for_duration,
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Moving a KV cache from prefill to decode takes {{ $value }} ms (p99) for "
                    "{{ $labels.model_name }}",
                    "description": f"Above {_num(slo.kv_transfer_p99_milliseconds)} ms "
                    "(sglang-platform:monitoring.slo.kvTransferP99Milliseconds) every answer starts that much "
                    "later. RDMA falling back to TCP (missing devices, IPC_LOCK), or a saturated fabric.",
                },
            }
        )
    return rules


def rule_groups(
    namespace: str,
    groups: Sequence[str],
    slo: Slo,
    gpu: bool = True,
    scraped: Sequence[str] | None = None,
    budgets: Mapping[str, int] | None = None,
    staging: bool = False,
    gateways: Sequence[str] = (),
    disaggregated: bool = False,
    stagers: Mapping[str, str] | None = None,
    sglang_release: str | None = None,
) -> list[dict]:
    """``groups``: every inference group (each role of a disaggregated service is one); ``scraped``: those with
    a PodMonitor (default: all); ``budgets``: startup budget in minutes by group (default: none alerted);
    ``stagers``: the weights DaemonSet by group, where it is not ``<group>-weights`` (a role's is its service's);
    ``staging``: some group's weights are staged by a DaemonSet; ``gateways``: the gateways' Deployment names;
    ``disaggregated``: the stack runs disaggregated services (their alerts, with ``sglang_release``'s series)."""
    scraped = groups if scraped is None else scraped
    out = [{"name": "sglang-slo", "rules": sglang_rules(namespace, groups, slo, scraped)}]
    startup = startup_rules(namespace, budgets or {}, stagers) + (staging_rules(namespace, slo) if staging else [])
    if startup:
        out.append({"name": "sglang-startup", "rules": startup})
    if disaggregated:
        out.append({"name": "sglang-disaggregation", "rules": disaggregation_rules(namespace, slo, sglang_release)})
    if gateways:
        out.append({"name": "sglang-gateway", "rules": gateway_rules(namespace, gateways, slo)})
    if gpu:
        out.append({"name": "gpu-health", "rules": gpu_rules(slo)})
    return out
