"""Reusable Pulumi components of sglang-platform. Importing this package registers nothing and loads
nothing: each name is imported on first use, so ``from components import SglangInferenceGroup`` pulls in
the inference group's modules only (not the monitoring stack and its Grafana SDK)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from config.lazy import lazy_getattr

if TYPE_CHECKING:
    from components.addons import GpuOperator, GpuOperatorArgs, LwsController, LwsControllerArgs, Volcano, VolcanoArgs
    from components.autoscaling import InferenceAutoscaler, InferenceAutoscalerArgs, Keda, KedaArgs
    from components.benchmark import ServingBenchmark, ServingBenchmarkArgs
    from components.disaggregated import SglangDisaggregatedService, SglangDisaggregatedServiceArgs
    from components.gateway import SglangGateway, SglangGatewayArgs
    from components.model_cache import ModelCache, ModelCacheArgs
    from components.monitoring import MonitoringStack, MonitoringStackArgs, ScrapeTarget
    from components.open_webui import Backend, OpenWebUI, OpenWebUIArgs
    from components.sglang_group import SglangInferenceGroup, SglangInferenceGroupArgs
    from components.sglang_pods import API_CLIENT_LABEL

_EXPORTS = {
    **dict.fromkeys(
        ("GpuOperator", "GpuOperatorArgs", "LwsController", "LwsControllerArgs", "Volcano", "VolcanoArgs"),
        "components.addons",
    ),
    **dict.fromkeys(("InferenceAutoscaler", "InferenceAutoscalerArgs", "Keda", "KedaArgs"), "components.autoscaling"),
    **dict.fromkeys(("SglangGateway", "SglangGatewayArgs"), "components.gateway"),
    **dict.fromkeys(("SglangDisaggregatedService", "SglangDisaggregatedServiceArgs"), "components.disaggregated"),
    **dict.fromkeys(("ModelCache", "ModelCacheArgs"), "components.model_cache"),
    **dict.fromkeys(("ServingBenchmark", "ServingBenchmarkArgs"), "components.benchmark"),
    **dict.fromkeys(("MonitoringStack", "MonitoringStackArgs", "ScrapeTarget"), "components.monitoring"),
    **dict.fromkeys(("Backend", "OpenWebUI", "OpenWebUIArgs"), "components.open_webui"),
    **dict.fromkeys(("SglangInferenceGroup", "SglangInferenceGroupArgs"), "components.sglang_group"),
    "API_CLIENT_LABEL": "components.sglang_pods",
}
__all__ = [
    "API_CLIENT_LABEL",
    "Backend",
    "GpuOperator",
    "GpuOperatorArgs",
    "InferenceAutoscaler",
    "InferenceAutoscalerArgs",
    "Keda",
    "KedaArgs",
    "LwsController",
    "LwsControllerArgs",
    "ModelCache",
    "ModelCacheArgs",
    "MonitoringStack",
    "MonitoringStackArgs",
    "OpenWebUI",
    "OpenWebUIArgs",
    "ScrapeTarget",
    "ServingBenchmark",
    "ServingBenchmarkArgs",
    "SglangDisaggregatedService",
    "SglangDisaggregatedServiceArgs",
    "SglangGateway",
    "SglangGatewayArgs",
    "SglangInferenceGroup",
    "SglangInferenceGroupArgs",
    "Volcano",
    "VolcanoArgs",
]


__getattr__ = lazy_getattr("components", _EXPORTS)
