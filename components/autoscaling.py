"""Elastic scaling: KEDA, and one ScaledObject per autoscaled inference group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ..config.autoscaling import GroupAutoscaling
from ..facts import bom
from ..facts.lws import LWS_API_VERSION
from ..facts.metrics import SglangMetrics
from ..render.k8s import away_from_gpu_nodes, labels, with_defaults
from .k8s import chart_values, child_opts, helm_release, meta, namespace, release_outputs

# The label the PodMonitor of a disaggregated service's role puts on its series (components/monitoring.py).
PD_ROLE = "pd_role"
# The window the latency triggers read their histograms over: a few polls, so one slow request does not add
# a group.
LATENCY_WINDOW = "2m"


def _selector(namespace: str, served_model_name: str, role: str | None) -> str:
    role_matcher = f',{PD_ROLE}="{role}"' if role else ""
    return f'{{namespace="{namespace}",model_name="{served_model_name}"{role_matcher}}}'


def queue_query(namespace: str, served_model_name: str, role: str | None = None) -> str:
    """Requests waiting in every group of the model (of one role): the signal that means users are waiting."""
    return f"sum(sglang:num_queue_reqs{_selector(namespace, served_model_name, role)})"


def kv_cache_query(namespace: str, served_model_name: str, role: str | None = None) -> str:
    """Average KV-cache usage of the model's groups (0-1); near 1 SGLang starts queueing and retracting."""
    return f"avg(sglang:token_usage{_selector(namespace, served_model_name, role)})"


def latency_query(histogram: str, namespace: str, served_model_name: str, role: str) -> str:
    """p90 of a latency histogram over the role's groups (seconds)."""
    selector = _selector(namespace, served_model_name, role)
    return f"histogram_quantile(0.9, sum by (le) (rate({histogram}_bucket{selector}[{LATENCY_WINDOW}])))"


def scaled_object_spec(
    lws_name: str,
    namespace: str,
    served_model_name: str,
    scaling: GroupAutoscaling,
    prometheus: pulumi.Input[str],
    role: str | None = None,
    inter_token_latency: str = "sglang:inter_token_latency_seconds",
) -> dict:
    """``role``: prefill or decode of a disaggregated service (its own signals, docs/disaggregation.md), None for
    a colocated group; ``inter_token_latency``: the pinned release's inter-token histogram."""

    def rules(stabilization: int, period: int) -> dict:
        # One whole group per period: LWS scales groups, and HPA "Pods" here counts LWS replicas.
        return {
            "stabilizationWindowSeconds": stabilization,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": period}],
        }

    found = triggers(namespace, served_model_name, scaling, prometheus, role, inter_token_latency)
    spec = {
        "scaleTargetRef": {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet", "name": lws_name},
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "pollingInterval": scaling.polling_interval_seconds,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {
                    "scaleUp": rules(scaling.scale_up_stabilization_seconds, scaling.scale_up_period_seconds),
                    "scaleDown": rules(scaling.scale_down_stabilization_seconds, scaling.scale_down_period_seconds),
                }
            }
        },
        "triggers": found,
    }
    if has_fallback(found):
        # If Prometheus is unreachable, hold the current size rather than fall to the minimum.
        spec["fallback"] = {"failureThreshold": 3, "replicas": scaling.min_replicas, "behavior": "currentReplicas"}
    return spec


def has_fallback(found: list[dict]) -> bool:
    """Whether a ScaledObject with these triggers gets ``fallback``: only with an AverageValue trigger. KEDA
    before 2.18 refuses a fallback without one at admission (``CheckFallbackValid``, v2.17.2
    apis/keda/v1alpha1/scaledobject_types.go), and the clusters of Kubernetes 1.30 run 2.17. Without it (decode,
    whose triggers are Values) nothing is lost: minReplicas is at least 1, so KEDA leaves the size to the HPA,
    and the HPA does not rescale while its metrics fail."""
    return any(t["metricType"] == "AverageValue" for t in found)


def triggers(
    namespace: str,
    served_model_name: str,
    scaling: GroupAutoscaling,
    prometheus: pulumi.Input[str],
    role: str | None = None,
    inter_token_latency: str = "sglang:inter_token_latency_seconds",
) -> list[dict]:
    """KEDA takes the largest size any trigger wants. A colocated group: queue depth and KV-cache usage.
    Prefill: its queue and its time to first token; decode: its KV-cache usage and inter-token latency (each
    latency only with its target set)."""

    def trigger(name: str, metric_type: str, query: str, threshold: float) -> dict:
        return {
            "type": "prometheus",
            "name": name,
            "metricType": metric_type,
            "metadata": {
                "serverAddress": prometheus,
                "query": query,
                "threshold": _number(threshold),
                "ignoreNullValues": "true",
            },
        }

    # AverageValue: desired groups = ceil(total queued / target per group).
    queue = trigger(
        "queue-depth", "AverageValue", queue_query(namespace, served_model_name, role), scaling.queue_depth_per_group
    )
    # Value: desired = ceil(current groups x usage / target); the latencies likewise.
    kv = trigger("kv-cache-usage", "Value", kv_cache_query(namespace, served_model_name, role), scaling.kv_cache_usage)
    if role is None:
        return [queue, kv]
    if role == "prefill":
        out = [queue]
        if scaling.ttft_seconds is not None:
            query = latency_query("sglang:time_to_first_token_seconds", namespace, served_model_name, role)
            out.append(trigger("time-to-first-token", "Value", query, scaling.ttft_seconds))
        return out
    out = [kv]
    if scaling.inter_token_latency_seconds is not None:
        query = latency_query(inter_token_latency, namespace, served_model_name, role)
        out.append(trigger("inter-token-latency", "Value", query, scaling.inter_token_latency_seconds))
    return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass
class KedaArgs:
    namespace: str
    chart_version: str
    # A chart mirror (render/charts.py) replacing the repository, and raw chart values under the typed ones.
    chart_mirror: str | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    depends_on: Sequence[pulumi.Resource] = ()


class Keda(pulumi.ComponentResource):
    """KEDA's Helm release; its CRDs are kept on uninstall so live ScaledObjects are not deleted with it."""

    release: k8s.helm.v3.Release
    release_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:Keda", name, None, opts)
        keda_ns = namespace(f"{name}-namespace", args.namespace, "baseline", child_opts(self, opts, *args.depends_on))
        self.release = helm_release(
            f"{name}-release",
            release_name="keda",
            namespace=args.namespace,
            chart="keda",
            version=args.chart_version,
            repository=bom.KEDA_REPO,
            mirror=args.chart_mirror,
            # The chart renders its CRDs as templates; uninstalling it must not delete live ScaledObjects.
            values=chart_values(
                self,
                "keda",
                # The chart's top-level affinity is the default of its operator, metrics server and webhooks
                # (keda 2.20.2 values.yaml): off the GPU nodes where they can (components/k8s.py).
                with_defaults({("affinity",): away_from_gpu_nodes()}, args.values),
                {"crds": {"install": True, "additionalAnnotations": {"helm.sh/resource-policy": "keep"}}},
            ),
            timeout=600,
            opts=child_opts(self, opts, keda_ns),
        )
        self.release_name, self.namespace, self.status = release_outputs(self.release)
        self.register_outputs({"release_name": self.release_name, "namespace": self.namespace, "status": self.status})


@dataclass
class InferenceAutoscalerArgs:
    lws_name: str
    namespace: str
    served_model_name: str
    config: GroupAutoscaling
    prometheus_address: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()
    # prefill or decode: a role of a disaggregated service, scaled on its own signals; None: a colocated group.
    role: str | None = None
    # The pinned SGLang release (its inter-token histogram's name); None: the newest release's.
    sglang_release: str | None = None


class InferenceAutoscaler(pulumi.ComponentResource):
    """A KEDA ScaledObject that sizes one group's LeaderWorkerSet on queue depth and KV-cache usage."""

    scaled_object_name: pulumi.Output[str]

    def __init__(self, name: str, args: InferenceAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:InferenceAutoscaler", name, None, opts)
        so_name = f"{args.lws_name}-autoscaler"
        k8s.apiextensions.CustomResource(
            f"{name}-scaledobject",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=meta(so_name, args.namespace, labels("keda-scaledobject", instance=args.lws_name)),
            spec=scaled_object_spec(
                args.lws_name,
                args.namespace,
                args.served_model_name,
                args.config,
                args.prometheus_address,
                args.role,
                SglangMetrics.of(args.sglang_release).inter_token_latency,
            ),
            opts=child_opts(self, opts, *args.depends_on),
        )
        self.scaled_object_name = pulumi.Output.from_input(so_name)
        self.register_outputs({"scaled_object_name": self.scaled_object_name})
