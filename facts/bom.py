"""Bill of materials: every third-party version the platform installs, pinned in one place, in two named sets.

``current`` (the default) is the newest releases that work together on a current Kubernetes; ``reference`` is
the reference deployment's (tests/fixtures/reference), kept so the prod stack stays comparable with it. A stack picks
one with ``sglang-platform:versions.set`` and may still override any single pin under ``versions``. Bumping a pin
here changes every stack on that set that does not override it; the conformance checks re-run against it.

Every pin is a constant whose line above is a ``# renovate: datasource=... depName=...`` comment: Renovate's
regex manager (``renovate.json``, customManagers) reads them and proposes bumps. The reference set's comments
carry ``depType=reference``, which renovate.json turns off: that set is the reference's on purpose, never
bumped. tests/test_bom.py checks that every pin has its comment and that the manager's regex matches it.
"""

from __future__ import annotations

from typing import Final

# --- current: the newest releases that work together (the default set) ------------------------------------------

# SGLang 0.5.23 (wheels of 2026-10-30, the newest on PyPI; its flag table is facts/sglang/0.5.23.json). From 0.5.20
# SGLang publishes CUDA 13 builds only: this image needs an R580 or newer driver on the GPU nodes
# (facts/cuda.py; gpuNodes.driverVersion is checked against it at preview). The release is read from the tag.
# renovate: datasource=docker depName=lmsysorg/sglang
SGLANG_IMAGE: Final = "lmsysorg/sglang:v0.5.23-cu130"

# The Kubernetes release a stack that does not say (versions.kubernetes) is checked for: rendered objects are
# validated against its schemas (kubernetes-validate, nearest release at or below) and every add-on version the
# stack installs against its window (facts/compat.py). 1.35 is the newest minor every add-on below claims (KEDA
# 2.20: 1.33-1.35; GPU Operator 26.7: 1.33-1.36; Volcano 1.15: 1.24-1.35); 1.35.8 (kubernetes.io/releases/1.35,
# 2026-08-11) is its newest patch the pinned charts were templated against.
# renovate: datasource=github-releases depName=kubernetes/kubernetes extractVersion=^v(?<version>.+)$
KUBERNETES_VERSION: Final = "1.35.8"

# Open WebUI 0.12.4, the newest release on PyPI (open-webui 0.12.4): every env var components/open_webui.py sets is
# read by that wheel's open_webui/env.py and config.py as before (WEBUI_SECRET_KEY, WEBUI_AUTH, ENABLE_SIGNUP,
# DEFAULT_USER_ROLE, ENABLE_OLLAMA_API, ENABLE_OPENAI_API, OPENAI_API_BASE_URLS/KEYS, AIOHTTP_CLIENT_TIMEOUT), and
# /health is still its health route. A first start over a database of an older release migrates it, one way.
# renovate: datasource=docker depName=ghcr.io/open-webui/open-webui
OPEN_WEBUI_IMAGE: Final = "ghcr.io/open-webui/open-webui:v0.12.4"

# SGLang's model gateway (docs/gateway.md): the image of PyPI's sglang-router 0.3.2, the newest and last release
# under that name. Its Dockerfile (sgl-project/sglang docker/gateway.Dockerfile) installs that wheel and runs
# `python3 -m sglang_router.launch_router`, whose argument parser (sglang_router/router_args.py of the wheel) is
# facts/gateways/sglang-router-0.3.2.json. The image moved from lmsysorg/sglang-router (last tag v0.2.4) to
# lmsysorg/sgl-model-gateway with the Dec 2025 rename; v0.3.2 is the tag of that release there (Docker Hub, per
# the published deployments that pin it, not pulled from here). Its successor, the Shepherd Model Gateway
# (SMG_IMAGE below), is not the default: in the discovery mode the platform runs it cannot gate a
# prefill/decode gateway's readiness on both roles nor keep per-role policies (docs/gateway.md, "smg").
# renovate: datasource=docker depName=lmsysorg/sgl-model-gateway
GATEWAY_IMAGE: Final = "lmsysorg/sgl-model-gateway:v0.3.2"

# kube-prometheus-stack 88.5.3 (the newest kube-prometheus-stack-* tag of 2026-08-21): prometheus-
# operator v0.93.1, whose PodMonitor/ServiceMonitor/PrometheusRule CRDs are the 0.93 ones the monitors are checked
# against.
# renovate: datasource=helm depName=kube-prometheus-stack registryUrl=https://prometheus-community.github.io/helm-charts
KUBE_PROMETHEUS_STACK_CHART: Final = "88.5.3"
# KEDA's chart and app versions match; 2.20.2 is the newest kedacore/charts tag (2026-07-31), tested on Kubernetes
# 1.33-1.35, and the release whose ScaledObject CRD is in third_party/crds.
# renovate: datasource=helm depName=keda registryUrl=https://kedacore.github.io/charts
KEDA_CHART: Final = "2.20.2"

# The download Job and the hostPath staging DaemonSet: a small Python image; the client library of the model's
# source is pip-installed at the pinned version below unless the image already has it (point
# versions.modelDownloaderImage at an image with them preinstalled for clusters without PyPI access). The same in
# both sets: components/model_cache.py's download script is written against these client releases.
# renovate: datasource=docker depName=python
MODEL_DOWNLOADER_IMAGE: Final = "python:3.12.8-slim-bookworm"
# renovate: datasource=pypi depName=huggingface_hub
HUGGINGFACE_HUB: Final = "huggingface_hub==2.4.0"
# renovate: datasource=pypi depName=modelscope
MODELSCOPE: Final = "modelscope==1.40.2"
# modelscope 1.40.2 runs its hub code from modelscope-hub, which its metadata leaves open-ended: pinned beside it, so a
# pod installs the client the download script was written and tested against (requirements-dev.txt has the same).
# renovate: datasource=pypi depName=modelscope-hub
MODELSCOPE_HUB: Final = "modelscope-hub==0.5.1"
# renovate: datasource=pypi depName=boto3
BOTO3: Final = "boto3==1.44.8"

# Cluster add-ons (docs/add-ons.md), the newest releases the chart mirror holds. NVIDIA's chart index spells versions
# with a leading v, Volcano's and the lws OCI registry without. GPU Operator v26.7.0 bundles node-feature-discovery
# 0.19.0 and installs driver 595.91.07 when it manages the driver; NVIDIA supports 26.7.x and ends support for
# 25.10.x and older (its upgrades go one major at a time: the chart mirror also holds v25.10.1, the middle step).
# renovate: datasource=helm depName=gpu-operator registryUrl=https://helm.ngc.nvidia.com/nvidia
GPU_OPERATOR_CHART: Final = "v26.7.0"
# Volcano 1.15.1, the newest release (v1.16.0 is still alpha); tested on Kubernetes 1.24-1.35.
# renovate: datasource=helm depName=volcano registryUrl=https://volcano-sh.github.io/helm-charts
VOLCANO_CHART: Final = "1.15.1"
# 0.10.0, not the reference's 0.5.1: gang scheduling needs >= 0.7.0, and only from 0.8.0 does the chart keep its
# CRDs out of the release (lws#718, #880); 0.10.0 also accepts restartPolicy RecreateGroupAfterStart. The newest
# release, in both sets.
# renovate: datasource=docker depName=registry.k8s.io/lws/charts/lws
LWS_CHART: Final = "0.10.0"

# --- reference: the reference deployment's versions (versions.set: reference) ------------------------------------
# What the reference deployment (tests/fixtures/reference) runs, and where it names none (or one no stack could deploy), what this platform pinned
# for it before the current set existed. The prod stack selects this set; renovate.json never bumps it.

# The reference's own image (its wheel on PyPI is what its flag table was generated from).
# renovate: datasource=docker depName=lmsysorg/sglang depType=reference
REFERENCE_SGLANG_IMAGE: Final = "lmsysorg/sglang:v0.4.3.post2-cu124"
# The reference cluster's Kubernetes. Its own Volcano 1.9.0 is tested only up to 1.29: a stack on this set that
# installs Volcano pins 1.10.x (prod does), which the compatibility check asks for by name.
# renovate: datasource=github-releases depName=kubernetes/kubernetes extractVersion=^v(?<version>.+)$ depType=reference
REFERENCE_KUBERNETES_VERSION: Final = "1.30.6"
# Open WebUI release of 2025-02-18 (the reference ran the floating :main at that time).
# renovate: datasource=docker depName=ghcr.io/open-webui/open-webui depType=reference
REFERENCE_OPEN_WEBUI_IMAGE: Final = "ghcr.io/open-webui/open-webui:v0.5.14"
# The reference has no gateway: the one the platform put in front of it.
# renovate: datasource=docker depName=lmsysorg/sgl-model-gateway depType=reference
REFERENCE_GATEWAY_IMAGE: Final = "lmsysorg/sgl-model-gateway:v0.3.2"
# The reference promises Prometheus and Grafana without a version: the chart the platform first shipped
# (prometheus-operator v0.93.0).
# renovate: datasource=helm depName=kube-prometheus-stack registryUrl=https://prometheus-community.github.io/helm-charts depType=reference
REFERENCE_KUBE_PROMETHEUS_STACK_CHART: Final = "88.3.0"
# The reference names autoscaling but runs no KEDA: 2.17 is the line tested on its Kubernetes (1.30-1.32), 2.17.2
# its newest chart tag (kedacore/charts v2.17.2), with the ScaledObject fallback.behavior the autoscaler sets.
# renovate: datasource=helm depName=keda registryUrl=https://kedacore.github.io/charts depType=reference
REFERENCE_KEDA_CHART: Final = "2.17.2"
# renovate: datasource=docker depName=python depType=reference
REFERENCE_MODEL_DOWNLOADER_IMAGE: Final = "python:3.12.8-slim-bookworm"
# renovate: datasource=pypi depName=huggingface_hub depType=reference
REFERENCE_HUGGINGFACE_HUB: Final = "huggingface_hub==2.4.0"
# renovate: datasource=pypi depName=modelscope depType=reference
REFERENCE_MODELSCOPE: Final = "modelscope==1.40.2"
# renovate: datasource=pypi depName=modelscope-hub depType=reference
REFERENCE_MODELSCOPE_HUB: Final = "modelscope-hub==0.5.1"
# renovate: datasource=pypi depName=boto3 depType=reference
REFERENCE_BOTO3: Final = "boto3==1.44.8"
# The reference cluster's GPU Operator and Volcano.
# renovate: datasource=helm depName=gpu-operator registryUrl=https://helm.ngc.nvidia.com/nvidia depType=reference
REFERENCE_GPU_OPERATOR_CHART: Final = "v24.9.1"
# renovate: datasource=helm depName=volcano registryUrl=https://volcano-sh.github.io/helm-charts depType=reference
REFERENCE_VOLCANO_CHART: Final = "1.9.0"
# The reference's LWS v0.5.1 has neither gang scheduling nor CRDs kept on upgrade: 0.10.0, as in the current set.
# renovate: datasource=docker depName=registry.k8s.io/lws/charts/lws depType=reference
REFERENCE_LWS_CHART: Final = "0.10.0"

# --- pins outside the sets ------------------------------------------------------------------------------------------

# The Shepherd Model Gateway, sglang-router's successor (PyPI smg 1.13.0, 2026-10; repo lightseekorg/smg): its
# release workflow tags lightseekorg/smg with the bare version. Set versions.gatewayImage to it to run it; its flag
# table is facts/gateways/smg-1.13.0.json.
# renovate: datasource=docker depName=lightseekorg/smg
SMG_IMAGE: Final = "lightseekorg/smg:1.13.0"

KUBE_PROMETHEUS_STACK_REPO: Final = "https://prometheus-community.github.io/helm-charts"
KEDA_REPO: Final = "https://kedacore.github.io/charts"
GPU_OPERATOR_REPO: Final = "https://helm.ngc.nvidia.com/nvidia"
VOLCANO_REPO: Final = "https://volcano-sh.github.io/helm-charts"
LWS_REPO: Final = "oci://registry.k8s.io/lws/charts"
LWS_CHART_REF: Final = f"{LWS_REPO}/lws"

CURRENT: Final[dict[str, str]] = {
    "sglangImage": SGLANG_IMAGE,
    "kubernetes": KUBERNETES_VERSION,
    "openWebuiImage": OPEN_WEBUI_IMAGE,
    "gatewayImage": GATEWAY_IMAGE,
    "kubePrometheusStack": KUBE_PROMETHEUS_STACK_CHART,
    "kedaChart": KEDA_CHART,
    "modelDownloaderImage": MODEL_DOWNLOADER_IMAGE,
    "huggingfaceHub": HUGGINGFACE_HUB,
    "modelscope": MODELSCOPE,
    "modelscopeHub": MODELSCOPE_HUB,
    "boto3": BOTO3,
    "gpuOperatorChart": GPU_OPERATOR_CHART,
    "volcanoChart": VOLCANO_CHART,
    "lwsChart": LWS_CHART,
}
REFERENCE: Final[dict[str, str]] = {
    "sglangImage": REFERENCE_SGLANG_IMAGE,
    "kubernetes": REFERENCE_KUBERNETES_VERSION,
    "openWebuiImage": REFERENCE_OPEN_WEBUI_IMAGE,
    "gatewayImage": REFERENCE_GATEWAY_IMAGE,
    "kubePrometheusStack": REFERENCE_KUBE_PROMETHEUS_STACK_CHART,
    "kedaChart": REFERENCE_KEDA_CHART,
    "modelDownloaderImage": REFERENCE_MODEL_DOWNLOADER_IMAGE,
    "huggingfaceHub": REFERENCE_HUGGINGFACE_HUB,
    "modelscope": REFERENCE_MODELSCOPE,
    "modelscopeHub": REFERENCE_MODELSCOPE_HUB,
    "boto3": REFERENCE_BOTO3,
    "gpuOperatorChart": REFERENCE_GPU_OPERATOR_CHART,
    "volcanoChart": REFERENCE_VOLCANO_CHART,
    "lwsChart": REFERENCE_LWS_CHART,
}
# The named sets (versions.set), with what each is for (the refusal of an unknown name lists them).
SETS: Final[dict[str, dict[str, str]]] = {"current": CURRENT, "reference": REFERENCE}
SET_PURPOSE: Final[dict[str, str]] = {
    "current": "the newest releases that work together, the default",
    "reference": "the reference deployment's versions",
}
DEFAULT_SET: Final = "current"
# The default set's pins (what a stack that names no set gets).
DEFAULTS: Final[dict[str, str]] = CURRENT
