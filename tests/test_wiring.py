"""components/wiring.py, the helpers __main__.py composes with, called directly: each takes what it reads."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import SMALL_GROUP, stack_values

from sglang_platform.components import wiring as w
from sglang_platform.components.addons import QUEUE_ANNOTATION
from sglang_platform.config import PlatformConfig


def config(stack: str = "dev", **changes: Any) -> PlatformConfig:
    values = copy.deepcopy(stack_values(stack)) | changes
    return PlatformConfig.model_validate(values)


def dev_with(*groups: dict, **changes: Any) -> PlatformConfig:
    values = stack_values("dev")
    return config(inferenceGroups=[*values["inferenceGroups"], *groups], **changes)


def fake(name: str, **attrs: Any) -> Any:
    return SimpleNamespace(name=name, **attrs)


def test_the_namespace_is_privileged_only_for_what_baseline_refuses():
    assert w.pod_security_level(config("dev")) == "baseline"
    # prod: InfiniBand (IPC_LOCK) and weights on a hostPath.
    assert w.pod_security_level(config("prod")) == "privileged"
    host_path = SMALL_GROUP | {"modelVolume": {"type": "hostPath", "hostPath": "/mnt/m", "mountPath": "/models"}}
    assert w.pod_security_level(dev_with(host_path)) == "privileged"


def test_the_namespace_is_kept_while_it_holds_a_retained_claim():
    # dev: Open WebUI's chat history and the weights' claim, both retained by default.
    assert w.keeps_state(config("dev")) is True
    group = copy.deepcopy(stack_values("dev")["inferenceGroups"][0])
    group["modelVolume"]["pvc"]["retain"] = False
    assert w.keeps_state(config("dev", inferenceGroups=[group])) is True
    assert w.keeps_state(config("dev", inferenceGroups=[group], openWebui={"enabled": False})) is False
    ui_deleted = {"enabled": True, "persistence": {"retainOnDestroy": False}}
    assert w.keeps_state(config("dev", inferenceGroups=[group], openWebui=ui_deleted)) is False


def test_clients_are_the_allowed_namespaces_and_prometheus():
    cfg = config("dev", apiAccess={"allowedNamespaces": ["team-a"]})
    assert w.client_namespaces(cfg) == ["team-a", cfg.monitoring.namespace]
    assert w.client_namespaces(config("dev", monitoring={"enabled": False})) == []


def test_each_source_installs_its_own_pinned_client():
    cfg = config("dev")
    (group,) = cfg.inference_groups
    assert w.hub_requirement(cfg, group) == cfg.versions.huggingface_hub
    local = SMALL_GROUP | {"name": "local", "model": {"path": "x", "servedName": "local", "source": "local"}}
    assert w.hub_requirement(dev_with(local), dev_with(local).inference_groups[1]) == ""


def test_a_group_waits_for_the_add_ons_it_uses():
    cfg = config("prod")
    (group,) = cfg.inference_groups
    namespace, lws, gpu, volcano, queue = (fake(n) for n in ("ns", "lws", "gpu", "volcano", "queue"))
    addons = {
        "lws": fake("lws", release=lws),
        "gpu_operator": fake("gpu", release=gpu),
        "volcano": fake("volcano", release=volcano, queue=queue),
    }
    assert group.scheduler == "volcano"
    assert w.group_dependencies(group, namespace, **addons) == [namespace, lws, gpu, volcano, queue]
    # A group on the default scheduler does not wait for Volcano; add-ons the stack does not install are absent.
    (default,) = config("dev").inference_groups
    assert w.group_dependencies(default, namespace, **addons) == [namespace, lws, gpu]
    assert w.group_dependencies(group, namespace, lws=None, gpu_operator=None, volcano=None) == [namespace]


def test_the_volcano_queue_annotation_only_on_volcano_groups():
    (volcano,) = config("prod").inference_groups
    (default,) = config("dev").inference_groups
    assert w.queue_annotations(volcano, "inference") == {QUEUE_ANNOTATION: "inference"}
    assert w.queue_annotations(default, "inference") == {}


def test_a_group_waits_for_its_cache_and_the_one_creating_its_claim_only():
    # qwen-small's cache creates the claim "models" (so it is its own cache and the claim's creator: once);
    # r1-distill, staged by hand, mounts that claim; "other" downloads into a claim of its own.
    other = SMALL_GROUP | {
        "name": "other",
        "modelVolume": {"type": "pvc", "claimName": "other", "pvc": {"size": "1Gi"}},
    }
    cfg = dev_with(SMALL_GROUP, other)
    small, r1, third = cfg.inference_groups
    caches = {g.name: fake(f"{g.name}-model") for g in cfg.inference_groups if g.needs_model_cache}
    creators = w.claim_creators(cfg.inference_groups, caches)
    assert creators == {"models": caches["qwen-small"], "other": caches["other"]}
    assert w.cache_dependencies(small, caches, creators) == [caches["qwen-small"]]
    assert "r1-distill" not in caches
    assert w.cache_dependencies(r1, caches, creators) == [caches["qwen-small"]]
    assert w.cache_dependencies(third, caches, creators) == [caches["other"]]


def test_a_group_and_a_service_get_the_stacks_image_access_queue_and_cache():
    cfg = config("prod")
    (group,) = cfg.inference_groups
    cache = fake("cache", init_containers=["gate"], volumes=["weights"], node_selector={"staged": "true"})
    args = w.serving_args(group, cfg, api_key="k", cache=cache, depends_on=[fake("ns")])
    assert args["image"] == cfg.versions.sglang_image and args["api_key"] == "k"
    assert args["annotations"] == args["pod_annotations"] == {QUEUE_ANNOTATION: cfg.volcano.queue.name}
    assert args["annotations"] is not args["pod_annotations"]
    assert (args["init_containers"], args["extra_volumes"], args["node_selector"]) == (
        ["gate"],
        ["weights"],
        {"staged": "true"},
    )
    assert args["client_namespaces"] == [cfg.monitoring.namespace]
    assert args["group_gate_image"] == cfg.versions.model_downloader_image
    bare = w.serving_args(group, cfg, api_key=None, cache=None, depends_on=[])
    assert (bare["init_containers"], bare["extra_volumes"], bare["node_selector"]) == ((), (), {})


def test_the_ui_talks_to_each_models_gateway_and_to_the_groups_no_gateway_fronts():
    cfg = dev_with(SMALL_GROUP, gateway={"enabled": True, "groups": ["qwen-small"]})
    groups = {
        g.name: fake(g.name, base_url=f"http://{g.name}/v1", api_key_secret_name=f"{g.name}-key")
        for g in cfg.inference_groups
    }
    gateways = {
        model: fake(model, base_url=f"http://{fronted.name}-gw/v1", api_key_secret_name="gw-key")
        for model, fronted in cfg.gateway_routes.items()
    }
    backends = w.ui_backends(cfg, groups, gateways)
    assert [(b.name, b.base_url, b.api_key_secret_name) for b in backends] == [
        ("qwen-small-gateway", "http://qwen-small-gw/v1", "gw-key"),
        ("r1-distill", "http://r1-distill/v1", "r1-distill-key"),
    ]
    without_gateway = dev_with(SMALL_GROUP, gateway={"enabled": False})
    assert [b.name for b in w.ui_backends(without_gateway, groups, {})] == ["qwen-small", "r1-distill"]


def test_a_gateway_is_named_for_the_group_it_fronts():
    (group,) = config("dev").inference_groups
    assert w.gateway_name(group) == "qwen-small-gateway"


def test_the_group_outputs_leave_out_disaggregated_services():
    cfg = dev_with(SMALL_GROUP)
    groups = {g.name: fake(g.name, base_url="u", served_model_name="m", service_name="s") for g in cfg.inference_groups}
    assert list(w.group_outputs(cfg, groups, {"r1-distill": object()})) == ["qwen-small"]
    assert w.group_outputs(cfg, groups, {})["r1-distill"] == {"baseUrl": "u", "servedModelName": "m", "service": "s"}


@pytest.mark.parametrize(
    ("component", "expected"),
    [
        (None, {"mode": "present"}),
        (fake("absent-release", release=None), {"mode": "present"}),
        (
            fake("x", release=object(), release_name="lws", namespace="lws-system", status="deployed"),
            {"mode": "present", "release": "lws", "namespace": "lws-system", "status": "deployed"},
        ),
    ],
)
def test_an_add_on_outputs_its_release_only_when_the_stack_installs_one(component, expected):
    assert w.addon_output("present", component) == expected
