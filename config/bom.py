"""Bill of materials: every third-party version the platform installs, pinned in one place.

Each entry can be overridden per stack under ``sglang-platform:versions``. Bumping a pin here changes
every stack that does not override it; the conformance checks re-run against the new version.
"""

from __future__ import annotations

from typing import Final

# The reference deployment (shared/reference) runs this exact image; its wheel on PyPI is what the
# flag check reads (sglang.srt.server_args of the same version).
SGLANG_IMAGE: Final = "lmsysorg/sglang:v0.4.3.post2-cu124"

# The Kubernetes release a stack that does not say (versions.kubernetes) is checked for: rendered objects are
# validated against its schemas (kubernetes-validate, nearest release at or below) and every add-on version the
# stack installs against its window (config/compat.py). 1.35.8 (kubernetes.io/releases/1.35, 2026-08-11) is
# the newest release KEDA 2.20 is tested on; the BOM's LWS and kube-prometheus-stack support it too. The
# BOM's Volcano 1.9.0 and GPU Operator v24.9.1 are the reference cluster's and claim only up to 1.29 and
# 1.31: a stack that installs them pins versions.kubernetes (prod: the reference's 1.30.6) or newer charts.
KUBERNETES_VERSION: Final = "1.35.8"

# Open WebUI release of 2025-02-18 (the reference ran the floating :main); its env vars (open_webui/env.py,
# config.py of the same wheel) are what components/open_webui.py sets. Newer releases migrate the database.
OPEN_WEBUI_IMAGE: Final = "ghcr.io/open-webui/open-webui:v0.5.14"

# kube-prometheus-stack 88.3.0 ships prometheus-operator 0.93.0, whose PodMonitor/ServiceMonitor/PrometheusRule
# CRDs are the ones in shared/crds the rendered monitors are validated against.
KUBE_PROMETHEUS_STACK_CHART: Final = "88.3.0"
# KEDA's chart and app versions match; 2.20.2 is the release whose ScaledObject CRD is in shared/crds.
KEDA_CHART: Final = "2.20.2"
KUBE_PROMETHEUS_STACK_REPO: Final = "https://prometheus-community.github.io/helm-charts"
KEDA_REPO: Final = "https://kedacore.github.io/charts"
# The download Job and the hostPath staging DaemonSet: a small Python image; the client library of
# the model's source is pip-installed at the pinned version below unless the image already has it (point
# versions.modelDownloaderImage at an image with them preinstalled for clusters without PyPI access).
MODEL_DOWNLOADER_IMAGE: Final = "python:3.12.8-slim-bookworm"
HUGGINGFACE_HUB: Final = "huggingface_hub==2.4.0"
MODELSCOPE: Final = "modelscope==1.40.2"
BOTO3: Final = "boto3==1.44.8"

# SGLang's model gateway (docs/gateway.md): the image of PyPI's sglang-router 0.3.2, the newest release.
# Its Dockerfile (sgl-project/sglang docker/gateway.Dockerfile) installs that wheel and runs
# `python3 -m sglang_router.launch_router`, whose argument parser (sglang_router/router_args.py of the
# wheel) the flag check reads. The image moved from lmsysorg/sglang-router (last tag v0.2.4) to
# lmsysorg/sgl-model-gateway with the Dec 2025 rename; v0.3.2 is the tag of that release there (Docker
# Hub, per the published deployments that pin it, not pulled from here). Pin a digest once your registry
# mirror has it: versions.gatewayImage.
GATEWAY_IMAGE: Final = "lmsysorg/sgl-model-gateway:v0.3.2"

# Cluster add-ons (docs/add-ons.md). The reference cluster runs gpu-operator v24.9.1 and Volcano
# v1.9.0. NVIDIA's chart index spells versions with a leading v, Volcano's and the lws OCI registry without.
GPU_OPERATOR_CHART: Final = "v24.9.1"
GPU_OPERATOR_REPO: Final = "https://helm.ngc.nvidia.com/nvidia"
VOLCANO_CHART: Final = "1.9.0"
VOLCANO_REPO: Final = "https://volcano-sh.github.io/helm-charts"
# 0.10.0, not the reference's 0.5.1: gang scheduling needs >= 0.7.0, and only from 0.8.0 does the chart keep
# its CRDs out of the release (lws#718, #880); 0.10.0 also accepts restartPolicy RecreateGroupAfterStart.
LWS_CHART: Final = "0.10.0"
LWS_REPO: Final = "oci://registry.k8s.io/lws/charts"
LWS_CHART_REF: Final = f"{LWS_REPO}/lws"

DEFAULTS: Final[dict[str, str]] = {
    "sglangImage": SGLANG_IMAGE,
    "kubernetes": KUBERNETES_VERSION,
    "openWebuiImage": OPEN_WEBUI_IMAGE,
    "gatewayImage": GATEWAY_IMAGE,
    "kubePrometheusStack": KUBE_PROMETHEUS_STACK_CHART,
    "kedaChart": KEDA_CHART,
    "modelDownloaderImage": MODEL_DOWNLOADER_IMAGE,
    "huggingfaceHub": HUGGINGFACE_HUB,
    "modelscope": MODELSCOPE,
    "boto3": BOTO3,
    "gpuOperatorChart": GPU_OPERATOR_CHART,
    "volcanoChart": VOLCANO_CHART,
    "lwsChart": LWS_CHART,
}
