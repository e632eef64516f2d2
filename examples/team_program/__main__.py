"""Another team's Pulumi program: its own namespace and one SGLang group from the sglang-platform package."""

import pulumi
import pulumi_kubernetes as k8s

from sglang_platform.components import SglangInferenceGroup, SglangInferenceGroupArgs
from sglang_platform.config import InferenceGroup

settings = pulumi.Config()
namespace = k8s.core.v1.Namespace("team-namespace", metadata={"name": settings.get("namespace", "team-a")})

group = InferenceGroup(
    name="r1-distill",
    model={"path": "DeepSeek-R1-Distill-Qwen-7B", "served_name": "r1-distill", "trust_remote_code": False},
    model_volume={"type": "pvc", "claim_name": "team-models"},
    gpus_per_node=1,
    resources={"cpu": "8", "memory": "64Gi", "shm_size": "8Gi"},
)
r1 = SglangInferenceGroup(
    "team-r1",
    # The namespace is an Output of this program's own Namespace; the group's children wait for it.
    SglangInferenceGroupArgs(
        config=group, namespace=namespace.metadata.name, image="lmsysorg/sglang:v0.4.3.post2-cu124"
    ),
    opts=pulumi.ResourceOptions(depends_on=[namespace]),
)
pulumi.export("baseUrl", r1.base_url)
pulumi.export("service", r1.service_name)
