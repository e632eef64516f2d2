"""Cluster add-ons: the releases each stack installs, the LWS CRDs the platform keeps, the Volcano queue
wiring, the order of components, and every add-on config rule with the message a user sees."""

from __future__ import annotations

import copy
import logging
from collections.abc import Set as AbstractSet

import pytest
from conftest import API_KEY, REQUIRED_SECRETS, lws, run_with, stack_values

from sglang_platform.config import ConfigError, validate
from sglang_platform.render.k8s import merge_values
from tools import crds, harness

RELEASE = "kubernetes:helm.sh/v3:Release"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
QUEUE_KEY = "scheduling.volcano.sh/queue-name"


ADD_ONS = ("gpu-operator", "lws", "volcano")


def releases(result) -> dict[str, dict]:
    """The add-on releases (the monitoring and autoscaling releases have tests of their own)."""
    return {r.spec["name"]: r.spec for r in result.of_type(RELEASE) if r.spec["name"] in ADD_ONS}


def release(result, name: str):
    (found,) = [r for r in result.of_type(RELEASE) if r.spec["name"] == name]
    return found


def problems(raw: dict, secrets: AbstractSet[str] = REQUIRED_SECRETS) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw, set(secrets))
    return str(info.value).splitlines()[1:]


def stack(name: str, **keys) -> dict:
    """The stack's values with ``keys`` merged in (a mapping into the stack's mapping of that key)."""
    raw = copy.deepcopy(stack_values(name))
    for key, value in keys.items():
        raw[key] = raw.get(key, {}) | value if isinstance(value, dict) else value
    return raw


def group_deps(result, group: str, child: str = "lws") -> set[str]:
    """What a group's child waits for, besides the model caches (tests/test_model_cache.py covers those) and
    the group's own group-gate objects (tests/test_group_gate.py)."""
    return {
        d
        for d in result.named(f"{group}-{child}").dependencies
        if "index:ModelCache$" not in d and not d.rsplit("::", 1)[-1].startswith(f"{group}-group-gate-")
    }


def prod_run(mutate):
    return run_with("prod", mutate, secrets={"apiKey": API_KEY})


# --- what each stack installs ---------------------------------------------------------------------------


def test_prod_installs_all_three_pinned(prod):
    specs = releases(prod)
    assert sorted(specs) == ["gpu-operator", "lws", "volcano"]
    assert {n: (s["namespace"], s["chart"], s["version"], s.get("repositoryOpts")) for n, s in specs.items()} == {
        "gpu-operator": ("gpu-operator", "gpu-operator", "v24.9.1", {"repo": "https://helm.ngc.nvidia.com/nvidia"}),
        # prod pins 1.10.2, the first Volcano line that supports its Kubernetes 1.30 (the BOM's 1.9.0 does not).
        "volcano": ("volcano-system", "volcano", "1.10.2", {"repo": "https://volcano-sh.github.io/helm-charts"}),
        # An OCI chart reference needs no repository.
        "lws": ("lws-system", "oci://registry.k8s.io/lws/charts/lws", "0.10.0", None),
    }
    for spec in specs.values():
        assert spec["cleanupOnFail"] is True
        assert spec["timeout"] >= 300


def test_prod_gpu_operator_values(prod):
    values = releases(prod)["gpu-operator"]["values"]
    # The reference hosts run driver 550.127.05 and Fabric Manager themselves: the operator must not replace
    # them, and without its driver container there is no nvidia-peermem to load either.
    assert values["driver"]["enabled"] is False
    assert values["driver"]["rdma"] == {"enabled": False, "useHostMofed": False}
    # What the groups need from it: the container toolkit and the device plugin that advertises nvidia.com/gpu,
    # NFD for the GPU feature labels the live checks read, and dcgm-exporter for the GPU panels and alerts.
    assert values["toolkit"]["enabled"] is values["devicePlugin"]["enabled"] is values["nfd"]["enabled"] is True
    assert values["dcgmExporter"]["enabled"] is True
    # The monitoring stack scrapes dcgm-exporter with its own ServiceMonitor: the operator's would scrape twice.
    assert values["dcgmExporter"]["serviceMonitor"]["enabled"] is False
    assert values["mig"] == {"strategy": "single"}


def test_prod_lws_values_turn_on_volcano_gang_scheduling(prod):
    assert releases(prod)["lws"]["values"] == {
        "image": {"manager": {"tag": "v0.10.0", "pullPolicy": "IfNotPresent"}},
        "gangSchedulingManagement": {"schedulerProvider": "volcano"},
    }
    # Volcano: only its controllers' placement off the GPU nodes (tests/test_placement.py).
    assert list(releases(prod)["volcano"]["values"]) == ["custom"]
    assert list(releases(prod)["volcano"]["values"]["custom"]) == ["default_affinity"]


def test_dev_switches_off_gpu_operator_and_volcano(dev):
    specs = releases(dev)
    assert sorted(specs) == ["lws"]
    assert specs["lws"]["values"] == {
        "image": {"manager": {"tag": "v0.10.0", "pullPolicy": "IfNotPresent"}},
        "gangSchedulingManagement": {},
    }
    kinds = {(o["kind"], o["metadata"]["name"]) for o in harness.kubernetes_objects(dev)}
    assert ("Namespace", "gpu-operator") not in kinds
    assert ("Namespace", "volcano-system") not in kinds
    assert not [k for k in kinds if k[0] == "Queue"]


def test_typed_gpu_operator_keys(prod):
    def tuned(values):
        # The operator's driver replaces the hosts' one prod declares (rules.drivers refuses both).
        del values["gpuNodes"]["driverVersion"]
        values["gpuOperator"] = {
            "mode": "install",
            "driver": {"managed": True, "version": "550.127.05", "rdma": True, "useHostMofed": True},
            "migStrategy": "mixed",
            "nodeFeatureDiscovery": False,
            "devicePlugin": False,
            "toolkit": False,
            "dcgmExporter": {
                "serviceMonitor": True,
                "serviceMonitorInterval": "30s",
                "serviceMonitorLabels": {"release": "kube-prometheus-stack"},
            },
        }

    values = releases(prod_run(tuned))["gpu-operator"]["values"]
    assert values["driver"] == {
        "enabled": True,
        "version": "550.127.05",
        "useOpenKernelModules": False,
        "rdma": {"enabled": True, "useHostMofed": True},
    }
    assert values["mig"] == {"strategy": "mixed"}
    assert values["nfd"] == {"enabled": False}
    assert values["devicePlugin"] == {"enabled": False}
    assert values["toolkit"] == {"enabled": False}
    assert values["dcgmExporter"]["serviceMonitor"] == {
        "enabled": True,
        "interval": "30s",
        "additionalLabels": {"release": "kube-prometheus-stack"},
    }


def test_raw_values_merge_under_typed_keys_and_conflicts_are_reported(caplog):
    def raw(values):
        values["gpuOperator"]["values"] = {
            "driver": {"enabled": True, "repository": "registry.example/nvidia"},
            "operator": {"defaultRuntime": "containerd"},
        }

    with caplog.at_level(logging.WARNING, logger="sglang-platform.mockrun"):
        result = prod_run(raw)
    values = releases(result)["gpu-operator"]["values"]
    assert values["operator"] == {"defaultRuntime": "containerd"}
    assert values["driver"]["repository"] == "registry.example/nvidia"
    assert values["driver"]["enabled"] is False  # driver.managed: false wins
    warnings = [r.getMessage() for r in caplog.records if "typed" in r.getMessage()]
    assert warnings == [
        "sglang-platform:gpuOperator.values.driver.enabled is also set by a typed key; the typed value wins"
    ]


def test_merge_values_reports_only_real_conflicts():
    merged, conflicts = merge_values(
        {"a": {"b": 1, "c": 2}, "d": 3, "e": {"f": 1}},
        {"a": {"b": 1, "c": 5}, "e": 7, "g": {"h": 1}},
    )
    assert merged == {"a": {"b": 1, "c": 5}, "d": 3, "e": 7, "g": {"h": 1}}
    assert conflicts == ["a.c", "e"]


def test_version_overrides_reach_the_releases():
    def bump(values):
        values["versions"] |= {"volcanoChart": "1.10.1", "gpuOperatorChart": "v24.9.2"}

    specs = releases(prod_run(bump))
    assert specs["volcano"]["version"] == "1.10.1"
    assert specs["gpu-operator"]["version"] == "v24.9.2"


def test_namespaces_and_pod_security(prod):
    labels = {
        o["metadata"]["name"]: o["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        for o in harness.kubernetes_objects(prod)
        if o["kind"] == "Namespace"
    }
    # The operator's driver, toolkit and device-plugin daemonsets run privileged with host paths.
    assert labels == {
        "deepseek": "privileged",
        "gpu-operator": "privileged",
        "keda": "baseline",
        "lws-system": "baseline",
        # node-exporter reads the host's /proc and /sys (components/monitoring.py).
        "monitoring": "privileged",
        # Volcano's scheduler mounts a host path (/tmp/klog-socks).
        "volcano-system": "privileged",
    }


# --- the LWS CRDs outlive the controller ----------------------------------------------------------------


def test_lws_crds_come_from_the_charts_crds_directory_which_helm_never_deletes(prod):
    # Chart >= 0.8.0 ships its CRDs in crds/: Helm installs them with the release (skipCrds false) and never
    # upgrades or deletes them, so no Pulumi-managed CRD object exists that a destroy could remove.
    lws_release = release(prod, "lws")
    assert lws_release.spec["chart"] == "oci://registry.k8s.io/lws/charts/lws"
    assert lws_release.spec["version"] == "0.10.0"
    assert not lws_release.spec.get("skipCrds")
    assert prod.of_type(CRD) == []


def test_lws_present_installs_nothing_and_the_group_renders_unchanged(dev):
    def present(values):
        values["lws"] = {"mode": "present"}

    result = run_with("dev", present)
    assert result.error is None
    assert releases(result) == {} and result.of_type(CRD) == []
    assert lws(result, "qwen-small") == lws(dev, "qwen-small")
    assert group_deps(result, "qwen-small") == {result.urn_of("serving-namespace")}


# --- ordering -------------------------------------------------------------------------------------------


def test_prod_group_waits_for_every_add_on(prod):
    deps = group_deps(prod, "deepseek-r1")
    assert deps == {
        prod.urn_of("serving-namespace"),
        prod.urn_of("lws-release"),
        prod.urn_of("gpu-operator-release"),
        prod.urn_of("volcano-release"),
        prod.urn_of("volcano-queue"),
    }
    assert group_deps(prod, "deepseek-r1", "api") == deps


def test_dev_group_waits_only_for_the_lws_controller(dev):
    assert group_deps(dev, "qwen-small") == {
        dev.urn_of("serving-namespace"),
        dev.urn_of("lws-release"),
    }


def test_releases_wait_for_their_namespaces(prod):
    assert release(prod, "gpu-operator").dependencies == [prod.urn_of("gpu-operator-namespace")]
    assert release(prod, "volcano").dependencies == [prod.urn_of("volcano-namespace")]
    assert prod.urn_of("lws-namespace") in release(prod, "lws").dependencies
    assert prod.named("volcano-queue").dependencies == [prod.urn_of("volcano-release")]


def test_add_ons_are_components_with_their_children(prod):
    for component, children in {
        "gpu-operator": ["gpu-operator-namespace", "gpu-operator-release"],
        "volcano": ["volcano-namespace", "volcano-release", "volcano-queue"],
        "lws": ["lws-namespace", "lws-release"],
    }.items():
        parent = prod.named(component)
        assert parent.type.startswith("sglang-platform:index:")
        for child in children:
            assert prod.named(child).parent == parent.urn


# --- the Volcano queue ----------------------------------------------------------------------------------


def test_prod_queue_and_its_groups(prod):
    queue = prod.k8s_object("Queue", "inference")
    assert queue["apiVersion"] == "scheduling.volcano.sh/v1beta1"
    assert "namespace" not in queue["metadata"]  # Queues are cluster-scoped
    assert queue["spec"] == {"weight": 1, "reclaimable": False, "capability": {"nvidia.com/gpu": "32"}}
    obj = lws(prod, "deepseek-r1")
    # LWS's Volcano provider reads the queue from the LeaderWorkerSet for the gang PodGroup.
    assert obj["metadata"]["annotations"][QUEUE_KEY] == "inference"
    tpl = obj["spec"]["leaderWorkerTemplate"]
    for pod in (tpl["leaderTemplate"], tpl["workerTemplate"]):
        assert pod["metadata"]["annotations"][QUEUE_KEY] == "inference"
        assert pod["spec"]["schedulerName"] == "volcano"


def test_default_scheduled_group_gets_no_queue(dev):
    obj = lws(dev, "qwen-small")
    assert QUEUE_KEY not in obj["metadata"].get("annotations", {})
    assert QUEUE_KEY not in obj["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"].get("annotations", {})


def test_existing_queue_on_a_cluster_that_runs_volcano():
    def existing(values):
        values["volcano"] = {"mode": "present", "queue": {"name": "gpu-team", "create": False}}

    result = prod_run(existing)
    assert result.error is None
    assert sorted(releases(result)) == ["gpu-operator", "lws"]
    assert not [o for o in harness.kubernetes_objects(result) if o["kind"] == "Queue"]
    assert lws(result, "deepseek-r1")["metadata"]["annotations"][QUEUE_KEY] == "gpu-team"
    assert result.of_type("sglang-platform:index:Volcano") == []
    deps = group_deps(result, "deepseek-r1")
    assert deps == {
        result.urn_of("serving-namespace"),
        result.urn_of("lws-release"),
        result.urn_of("gpu-operator-release"),
    }


def test_present_volcano_gets_the_stack_queue():
    def present(values):
        values["volcano"]["mode"] = "present"

    result = prod_run(present)
    assert "volcano" not in releases(result)
    assert result.named("volcano-queue").dependencies == []
    assert result.urn_of("volcano-queue") in result.named("deepseek-r1-lws").dependencies


# --- outputs --------------------------------------------------------------------------------------------


def test_outputs_name_each_release(prod, dev):
    addons = prod.outputs["addons"]
    assert {k: (v["mode"], v.get("release"), v.get("namespace")) for k, v in addons.items()} == {
        "gpuOperator": ("install", "gpu-operator", "gpu-operator"),
        "volcano": ("install", "volcano", "volcano-system"),
        "lws": ("install", "lws", "lws-system"),
        "keda": ("install", "keda", "keda"),
    }
    # Helm reports the status after `pulumi up`; the mock engine has none.
    assert all("status" in v for v in addons.values())
    assert addons["volcano"]["queue"] == "inference"
    assert addons["lws"]["gangScheduling"] is True
    assert dev.outputs["addons"] == {
        "gpuOperator": {"mode": "present"},
        "volcano": {"mode": "absent"},
        "lws": {
            "mode": "install",
            "release": "lws",
            "namespace": "lws-system",
            "status": None,
            "gangScheduling": False,
        },
        "keda": {"mode": "install", "release": "keda", "namespace": "keda", "status": None},
    }


# --- config rules ---------------------------------------------------------------------------------------


def test_shipped_stacks_declare_their_add_ons():
    prod = validate(stack_values("prod"), REQUIRED_SECRETS)
    assert (prod.gpu_operator.mode, prod.volcano.mode, prod.lws.mode, prod.lws.gang_scheduling) == (
        "install",
        "install",
        "install",
        True,
    )
    dev = validate(stack_values("dev"), REQUIRED_SECRETS)
    assert (dev.gpu_operator.mode, dev.volcano.mode, dev.lws.mode) == ("present", "absent", "install")


def test_gang_scheduling_needs_volcano():
    raw = stack("dev", lws={"mode": "install", "gangScheduling": True})
    assert problems(raw) == [
        "  - sglang-platform:inferenceGroups[0].scheduler: lws.gangScheduling is on, so the controller gives every "
        "LeaderWorkerSet a Volcano PodGroup and a group the default scheduler places never starts (lws#630): use "
        "scheduler volcano",
        "  - sglang-platform:lws.gangScheduling: gang scheduling runs through Volcano, but "
        "sglang-platform:volcano.mode is absent: set it to install or present, or turn gangScheduling off",
    ]


def test_gang_scheduling_needs_lws_0_7():
    raw = stack("prod", versions={"lwsChart": "0.6.3"})
    raw["lws"]["mode"] = "present"
    assert problems(raw) == [
        "  - sglang-platform:versions.lwsChart: gang scheduling (lws.gangScheduling) needs LeaderWorkerSet 0.7.0 or "
        "later (gangSchedulingManagement, lws#498); the version is 0.6.3",
    ]
    raw["versions"]["lwsChart"] = "0.7.0"
    validate(raw, REQUIRED_SECRETS)


def test_installing_lws_0_7_is_refused_because_its_upgrade_deletes_the_crd():
    raw = stack("prod", versions={"lwsChart": "0.7.0"})
    assert problems(raw) == [
        "  - sglang-platform:versions.lwsChart: lws chart 0.7.0 renders the LeaderWorkerSet CRD as part of the "
        "release, so an upgrade or removal deletes it and every group with it (lws#880): install 0.8.0 or later",
    ]


def test_lws_cannot_be_absent():
    assert problems(stack("dev", lws={"mode": "absent"})) == [
        "  - sglang-platform:lws.mode: every inference group is a LeaderWorkerSet, so the LWS controller cannot be "
        "absent: set install (this stack installs it) or present (the cluster runs it)",
    ]


def test_volcano_group_needs_volcano():
    raw = stack("dev")
    raw["inferenceGroups"][0]["scheduler"] = "volcano"
    assert problems(raw) == [
        "  - sglang-platform:inferenceGroups[0].scheduler: scheduler volcano, but sglang-platform:volcano.mode is "
        "absent: set it to install (this stack installs Volcano) or present (the cluster runs it), or use "
        "scheduler default",
    ]
    raw["volcano"] = {"mode": "present"}
    validate(raw, REQUIRED_SECRETS)


def test_queue_capability_must_fit_the_groups():
    raw = stack("prod")
    del raw["inferenceGroups"][0]["autoscaling"]
    raw["inferenceGroups"][0]["replicas"] = 2
    raw["inferenceGroups"][0]["rollout"]["maxSurge"] = 1
    raw["volcano"]["queue"]["capability"] = {"nvidia.com/gpu": "40", "memory": "4Ti", "cpu": "2000"}
    assert problems(raw) == [
        "  - sglang-platform:volcano.queue.capability: memory 4Ti is less than the groups in the queue need: "
        "deepseek-r1 (2 replicas + 1 surge) x 2 pods x 1991Gi; in all 11946Gi. Groups beyond the capability are never "
        "admitted: raise it, or lower replicas, autoscaling.maxReplicas or rollout.maxSurge",
        "  - sglang-platform:volcano.queue.capability: nvidia.com/gpu 40 is less than the groups in the queue need: "
        "deepseek-r1 (2 replicas + 1 surge) x 2 pods x 8; in all 48. Groups beyond the capability are never "
        "admitted: raise it, or lower replicas, autoscaling.maxReplicas or rollout.maxSurge",
    ]
    raw["volcano"]["queue"]["capability"] = {"nvidia.com/gpu": "48", "rdma/ib": "24"}
    validate(raw, REQUIRED_SECRETS)


def test_queue_capability_holds_autoscaled_groups_at_their_maximum():
    # A scale-up the queue cannot admit would wait forever behind the gang scheduler.
    raw = stack("prod")
    raw["inferenceGroups"][0]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    assert problems(raw) == [
        "  - sglang-platform:volcano.queue.capability: nvidia.com/gpu 32 is less than the groups in the queue need: "
        "deepseek-r1 (3 autoscaling.maxReplicas + 0 surge) x 2 pods x 8; in all 48. Groups beyond the capability "
        "are never admitted: raise it, or lower replicas, autoscaling.maxReplicas or rollout.maxSurge",
    ]


def test_queue_capability_counts_only_volcano_groups_and_is_a_quantity():
    raw = stack("prod")
    raw["volcano"]["queue"]["capability"] = {"nvidia.com/gpu": "lots"}
    assert problems(raw) == [
        "  - sglang-platform:volcano.queue.capability[\"nvidia.com/gpu\"]: 'lots' is not a Kubernetes quantity "
        "(a number with an optional suffix: Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent such as 1e3)",
    ]


def test_volcano_default_queue_is_not_ours_to_manage():
    raw = stack("prod")
    raw["volcano"]["queue"]["name"] = "default"
    assert problems(raw) == [
        "  - sglang-platform:volcano.queue.name: 'default' is the queue Volcano creates itself: choose another name, "
        "or set queue.create to false to place the groups in it as it is",
    ]
    raw["volcano"]["queue"]["create"] = False
    validate(raw, REQUIRED_SECRETS)


def test_gpu_operator_driver_rules():
    raw = stack("prod")
    raw["gpuOperator"]["driver"] = {"managed": False, "rdma": True, "version": "550.127.05"}
    assert problems(raw) == [
        "  - sglang-platform:gpuOperator.driver.rdma: GPUDirect RDMA is set up by the operator's driver container "
        "(nvidia-peermem); with a preinstalled driver (driver.managed false) load nvidia-peermem on the hosts and "
        "leave this false",
        "  - sglang-platform:gpuOperator.driver.version: only used when driver.managed is true",
    ]
    raw["gpuOperator"]["driver"] = {"managed": True, "useHostMofed": True}
    assert problems(raw) == [
        # prod declares the hosts' own driver, which a managed one replaces (rules.drivers).
        "  - sglang-platform:gpuNodes.driverVersion: is 550.127.05, a driver installed on the hosts, but this "
        "stack's GPU Operator installs its own (550.127.08, the default driver of the GPU Operator v24.9.1 chart; "
        "gpuOperator.driver.managed is true): remove it, or set gpuOperator.driver.managed false when the hosts "
        "keep their driver",
        "  - sglang-platform:gpuOperator.driver.useHostMofed: only used when driver.rdma is true",
    ]


def test_chart_values_need_mode_install():
    raw = stack("dev")
    raw["gpuOperator"]["values"] = {"nfd": {"enabled": False}}
    assert problems(raw) == [
        "  - sglang-platform:gpuOperator.values: chart values only apply when mode is install (it is present)",
    ]


@pytest.mark.parametrize("version", ["latest", "^1.9", "1.9", "1.9.x", "main"])
def test_chart_versions_are_pins(version):
    assert problems(stack("prod", versions={"volcanoChart": version})) == [
        f"  - sglang-platform:versions.volcanoChart: chart version {version!r} is not a pinned release: use an "
        "exact version such as 1.9.0 (no ranges, no latest)",
    ]


def test_unknown_mode_and_keys_are_refused():
    raw = stack("prod")
    raw["volcano"]["mode"] = "installed"
    raw["lws"]["gang"] = True
    assert problems(raw) == [
        "  - sglang-platform:lws.gang: unknown key (a typo?); allowed here: mode, gangScheduling, values, chartMirror",
        "  - sglang-platform:volcano.mode: Input should be 'install', 'present' or 'absent' (got 'installed')",
    ]


# --- what is rendered fits the CRDs it is sent to -------------------------------------------------------


def crd_schema(doc: dict, version: str) -> dict:
    (served,) = [v for v in doc["spec"]["versions"] if v["name"] == version]
    return served["schema"]["openAPIV3Schema"]


def test_queue_fits_the_volcano_queue_crd(prod):
    import jsonschema

    # The Queue CRD of the Volcano release prod installs (1.10.2, not the BOM's).
    (path,) = [
        p for p in crds.files_for("volcano", stack_values("prod")["versions"]["volcanoChart"]) if "queues" in p.name
    ]
    (doc,) = crds.documents(path)
    queue = prod.k8s_object("Queue", "inference")
    jsonschema.validate(queue, crd_schema(doc, "v1beta1"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**queue, "spec": {**queue["spec"], "weight": "heavy"}}, crd_schema(doc, "v1beta1"))
