"""Elastic scaling: KEDA, and one ScaledObject per autoscaled inference group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.addons import _namespace, _release, _release_outputs, _values
from config import bom
from config.autoscaling import GroupAutoscaling

KEDA_REPOSITORY = bom.KEDA_REPO


def queue_query(namespace: str, served_model_name: str) -> str:
    """Requests waiting in every group of the model: the signal that means users are waiting."""
    return f'sum(sglang:num_queue_reqs{{namespace="{namespace}",model_name="{served_model_name}"}})'


def kv_cache_query(namespace: str, served_model_name: str) -> str:
    """Average KV-cache usage of the model's groups (0-1); near 1 SGLang starts queueing and retracting."""
    return f'avg(sglang:token_usage{{namespace="{namespace}",model_name="{served_model_name}"}})'


def scaled_object_spec(
    lws_name: str, namespace: str, served_model_name: str, scaling: GroupAutoscaling, prometheus: pulumi.Input[str]
) -> dict:
    def rules(stabilization: int, period: int) -> dict:
        # One whole group per period: LWS scales groups, and HPA "Pods" here counts LWS replicas.
        return {
            "stabilizationWindowSeconds": stabilization,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": period}],
        }

    return {
        "scaleTargetRef": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet", "name": lws_name},
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
        # If Prometheus is unreachable, hold the current size rather than fall to the minimum.
        "fallback": {"failureThreshold": 3, "replicas": scaling.min_replicas, "behavior": "currentReplicas"},
        "triggers": [
            {
                "type": "prometheus",
                "name": "queue-depth",
                # AverageValue: desired groups = ceil(total queued / target per group).
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": prometheus,
                    "query": queue_query(namespace, served_model_name),
                    "threshold": _number(scaling.queue_depth_per_group),
                    "ignoreNullValues": "true",
                },
            },
            {
                "type": "prometheus",
                "name": "kv-cache-usage",
                # Value: desired = ceil(current groups x usage / target).
                "metricType": "Value",
                "metadata": {
                    "serverAddress": prometheus,
                    "query": kv_cache_query(namespace, served_model_name),
                    "threshold": _number(scaling.kv_cache_usage),
                    "ignoreNullValues": "true",
                },
            },
        ],
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass
class KedaArgs:
    namespace: str
    chart_version: str
    # A chart mirror (config/charts.py) replacing the repository, and raw chart values under the typed ones.
    mirror: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


class Keda(pulumi.ComponentResource):
    """KEDA's Helm release; its CRDs are kept on uninstall so live ScaledObjects are not deleted with it."""

    release: k8s.helm.v3.Release
    release_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    status: pulumi.Output[str]

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sglang-platform:index:Keda", name, None, opts)
        namespace = _namespace(f"{name}-namespace", args.namespace, "baseline", self, ())
        self.release = _release(
            f"{name}-release",
            self,
            release_name="keda",
            namespace=args.namespace,
            chart="keda",
            version=args.chart_version,
            repository=KEDA_REPOSITORY,
            mirror=args.mirror,
            # The chart renders its CRDs as templates; uninstalling it must not delete live ScaledObjects.
            values=_values(
                self,
                "keda",
                args.values,
                {"crds": {"install": True, "additionalAnnotations": {"helm.sh/resource-policy": "keep"}}},
            ),
            timeout=600,
            depends_on=[namespace],
        )
        self.release_name, self.namespace, self.status = _release_outputs(self.release)
        self.register_outputs({"release_name": self.release_name, "namespace": self.namespace, "status": self.status})


@dataclass
class InferenceAutoscalerArgs:
    lws_name: str
    namespace: str
    served_model_name: str
    scaling: GroupAutoscaling
    prometheus_address: pulumi.Input[str]
    depends_on: Sequence[pulumi.Resource] = ()


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
            metadata={
                "name": so_name,
                "namespace": args.namespace,
                "labels": {"app.kubernetes.io/part-of": "sglang-platform", "app.kubernetes.io/instance": args.lws_name},
            },
            spec=scaled_object_spec(
                args.lws_name, args.namespace, args.served_model_name, args.scaling, args.prometheus_address
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.scaled_object_name = pulumi.Output.from_input(so_name)
        self.register_outputs({"scaled_object_name": self.scaled_object_name})
