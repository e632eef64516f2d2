"""Reusable Pulumi components of sglang-platform. Importing this package registers nothing and loads
nothing: each name is imported on first use, so ``from sglang_platform.components import SglangInferenceGroup`` pulls in
the inference group's modules only (not the monitoring stack and its Grafana SDK)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from ..render.sglang_pods import API_CLIENT_LABEL
    from .addons import GpuOperator, GpuOperatorArgs, LwsController, LwsControllerArgs, Volcano, VolcanoArgs
    from .autoscaling import InferenceAutoscaler, InferenceAutoscalerArgs, Keda, KedaArgs
    from .benchmark import ServingBenchmark, ServingBenchmarkArgs
    from .disaggregated import SglangDisaggregatedService, SglangDisaggregatedServiceArgs
    from .gateway import SglangGateway, SglangGatewayArgs
    from .model_cache import ModelCache, ModelCacheArgs
    from .monitoring import MonitoringStack, MonitoringStackArgs, ScrapeTarget
    from .open_webui import Backend, OpenWebUI, OpenWebUIArgs
    from .platform import Platform, PlatformArgs
    from .sglang_group import SglangInferenceGroup, SglangInferenceGroupArgs

_EXPORTS = {
    **dict.fromkeys(
        ("GpuOperator", "GpuOperatorArgs", "LwsController", "LwsControllerArgs", "Volcano", "VolcanoArgs"),
        "sglang_platform.components.addons",
    ),
    **dict.fromkeys(
        ("InferenceAutoscaler", "InferenceAutoscalerArgs", "Keda", "KedaArgs"), "sglang_platform.components.autoscaling"
    ),
    **dict.fromkeys(("SglangGateway", "SglangGatewayArgs"), "sglang_platform.components.gateway"),
    **dict.fromkeys(
        ("SglangDisaggregatedService", "SglangDisaggregatedServiceArgs"), "sglang_platform.components.disaggregated"
    ),
    **dict.fromkeys(("ModelCache", "ModelCacheArgs"), "sglang_platform.components.model_cache"),
    **dict.fromkeys(("ServingBenchmark", "ServingBenchmarkArgs"), "sglang_platform.components.benchmark"),
    **dict.fromkeys(
        ("MonitoringStack", "MonitoringStackArgs", "ScrapeTarget"), "sglang_platform.components.monitoring"
    ),
    **dict.fromkeys(("Backend", "OpenWebUI", "OpenWebUIArgs"), "sglang_platform.components.open_webui"),
    **dict.fromkeys(("Platform", "PlatformArgs"), "sglang_platform.components.platform"),
    **dict.fromkeys(("SglangInferenceGroup", "SglangInferenceGroupArgs"), "sglang_platform.components.sglang_group"),
    "API_CLIENT_LABEL": "sglang_platform.render.sglang_pods",
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
    "Platform",
    "PlatformArgs",
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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
