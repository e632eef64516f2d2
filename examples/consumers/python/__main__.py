"""One inference group and its model gateway: the Python twin of the YAML, TypeScript and Go programs."""

import pulumi

from sglang_platform.components import SglangGateway, SglangGatewayArgs, SglangInferenceGroup, SglangInferenceGroupArgs
from sglang_platform.config import InferenceGroup
from sglang_platform.config.gateway import GatewayConfig
from sglang_platform.facts import bom

config = pulumi.Config()
qwen = SglangInferenceGroup(
    "qwen",
    SglangInferenceGroupArgs(
        namespace="team-a",
        image="lmsysorg/sglang:v0.5.23-cu130",
        api_key=config.require_secret("apiKey"),
        config=InferenceGroup.model_validate(
            {
                "name": "qwen",
                "model": {"path": "Qwen2.5-1.5B-Instruct", "servedName": "qwen", "trustRemoteCode": False},
                "modelVolume": {"type": "hostPath", "hostPath": "/models"},
                "gpusPerNode": 1,
                "resources": {"cpu": "8", "memory": "32Gi", "shmSize": "8Gi"},
            }
        ),
    ),
)
gateway = SglangGateway(
    "qwen-gateway",
    SglangGatewayArgs(
        namespace="team-a",
        image=bom.GATEWAY_IMAGE,
        served_model_name="qwen",
        worker_port=8000,
        api_key_secret_name=qwen.api_key_secret_name,
        sglang_release="0.5.23",
        config=GatewayConfig.model_validate({"policy": "round_robin"}),
    ),
)
pulumi.export("baseUrl", gateway.base_url)
