"""Reusable Pulumi components of sglang-platform. Importing this package registers nothing."""

from components.addons import (
    GpuOperator,
    GpuOperatorArgs,
    LwsController,
    LwsControllerArgs,
    Volcano,
    VolcanoArgs,
)
from components.autoscaling import InferenceAutoscaler, InferenceAutoscalerArgs, Keda, KedaArgs
from components.model_cache import ModelCache, ModelCacheArgs
from components.monitoring import MonitoringStack, MonitoringStackArgs, ScrapeTarget
from components.open_webui import Backend, OpenWebUI, OpenWebUIArgs
from components.sglang_group import API_CLIENT_LABEL, SglangInferenceGroup, SglangInferenceGroupArgs

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
    "SglangInferenceGroup",
    "SglangInferenceGroupArgs",
    "Volcano",
    "VolcanoArgs",
]
