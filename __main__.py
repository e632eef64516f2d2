"""sglang-platform: composes the components from the validated stack configuration."""

import pulumi
import pulumi_kubernetes as k8s

import config
from components import SglangInferenceGroup, SglangInferenceGroupArgs

try:
    loaded = config.load()
except config.ConfigError as error:
    # A clean message naming every bad key, and nothing registered.
    raise pulumi.RunError(str(error)) from None

platform = loaded.platform


def pod_security_level(cfg: config.PlatformConfig) -> str:
    """hostPath volumes and IPC_LOCK (RDMA) are outside the baseline Pod Security Standard."""
    needs_privileged = any(
        g.network.fabric == "infiniband" or g.model_volume.type == "hostPath" for g in cfg.inference_groups
    )
    return "privileged" if needs_privileged else "baseline"


level = pod_security_level(platform)
namespace = k8s.core.v1.Namespace(
    "serving-namespace",
    metadata={
        "name": platform.namespace,
        "labels": {
            "app.kubernetes.io/part-of": "sglang-platform",
            "pod-security.kubernetes.io/enforce": level,
            "pod-security.kubernetes.io/warn": level,
        },
    },
)

groups = {}
for group in platform.inference_groups:
    groups[group.name] = SglangInferenceGroup(
        group.name,
        SglangInferenceGroupArgs(
            group=group,
            namespace=platform.namespace,
            image=platform.versions.sglang_image,
            api_key=loaded.secrets.get("apiKey"),
            client_namespaces=platform.api_access.allowed_namespaces,
            depends_on=[namespace],
        ),
    )

pulumi.export("namespace", platform.namespace)
pulumi.export(
    "inferenceGroups",
    {
        name: {"baseUrl": g.base_url, "servedModelName": g.served_model_name, "service": g.service_name}
        for name, g in groups.items()
    },
)
