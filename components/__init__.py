"""Reusable Pulumi components of sglang-platform. Importing this package registers nothing."""

from components.model_cache import ModelCache, ModelCacheArgs
from components.sglang_group import API_CLIENT_LABEL, SglangInferenceGroup, SglangInferenceGroupArgs

__all__ = ["API_CLIENT_LABEL", "ModelCache", "ModelCacheArgs", "SglangInferenceGroup", "SglangInferenceGroupArgs"]
