"""Another team's Pulumi program reusing SglangInferenceGroup with its own args (see README)."""

import pulumi

from components import SglangInferenceGroup, SglangInferenceGroupArgs
from config import InferenceGroup

group = InferenceGroup(
    name="r1-distill",
    model={"path": "DeepSeek-R1-Distill-Qwen-7B", "served_name": "r1-distill"},
    model_volume={"type": "pvc", "claim_name": "team-models"},
    gpus_per_node=1,
    resources={"cpu": "8", "memory": "64Gi", "shm_size": "8Gi"},
)
r1 = SglangInferenceGroup(
    "team-r1",
    SglangInferenceGroupArgs(config=group, namespace="team-a", image="lmsysorg/sglang:v0.4.3.post2-cu124"),
)
pulumi.export("baseUrl", r1.base_url)
