"""The simulated cluster itself (no way out of its network namespace), live/cluster.py against its real API
server, and another team's program (examples/team_program) through the engine."""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any

import pytest
import yaml
from conftest import ROOT, stack_values

from tools.engine import Project
from tools.sim_stacks import NODE_SHAPE, SIM_KUBERNETES

from .scenario import running_on_distinct_nodes

# Two nodes as GPU feature discovery and the device plugin describe an 8 x A800 node (tools/sim_stacks.GFD_LABELS),
# registered by cluster.sh; the KEDA and Volcano CRDs for the add-ons a stack may trust the cluster to run.
SIM_OPTIONS = ("--nodes", "2", "--pvs", "4", "--pv-size", "100Gi", *NODE_SHAPE)
EXTRA_CRDS = (
    "keda-v2.20.2-scaledobjects.yaml",
    "volcano-v1.9.0-podgroups.yaml",
    "volcano-v1.9.0-queues.yaml",
)
NS = "live-e2e"


def test_nothing_leaves_the_network_namespace(cluster):
    result = cluster.exec("curl", "-v", "-m", "3", "https://10.0.0.1", check=False)
    assert result.returncode == 7, result.output
    assert "Network is unreachable" in result.output


# Runs inside the network namespace (the cluster is reachable only there): the stack's values with the case's
# changes, validated, then live.cluster against the cluster the kubeconfig names, as `pulumi preview` runs it.
LIVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from sglang_platform.config import validate
    from sglang_platform.live.cluster import ClusterAccess, connect, live_problems
    from tools import harness
    from tools.sim_stacks import committed, merged
    import yaml

    case = json.loads(sys.argv[2])
    raw = yaml.safe_load(harness.stack_path(case["stack"]).read_text())["config"]
    raw = merged({k.split(":", 1)[1]: v for k, v in raw.items()}, case.get("set", {}))
    cfg = validate(raw, {"apiKey", "webuiSecretKey", "grafanaAdminPassword"})
    problems, notes = live_problems(cfg, access=ClusterAccess(context=case.get("context")))
    out = {"problems": sorted(f"{p.key}: {p.message}" for p in problems), "notes": notes}
    if case.get("reads"):
        cluster = connect()
        out["classes"] = sorted(cluster.storage_classes())
        out["claim"] = list(cluster.claim("live-e2e", "open-webui-data").__dict__.values())
        out["absent"] = cluster.claim("live-e2e", "nothing-here")
        out["nodes"] = sorted(n["metadata"]["name"] for n in cluster.nodes())
        out["version"] = cluster.version().get("gitVersion")
    print(json.dumps(out))
    """
)


def live(cluster, tmp_path, **case) -> dict:
    script = tmp_path / "live.py"
    script.write_text(LIVE_SCRIPT)
    return json.loads(cluster.exec(sys.executable, str(script), str(ROOT), json.dumps(case)).stdout)


# What the simulation is: Kubernetes 1.36.3 (prod declares 1.30.6 and is refused for it below).
ON_THE_SIM = {"versions": {"kubernetes": SIM_KUBERNETES}, "preflight": {"compatibility": False}}
# prod's UI claim names nfs-client, which this cluster lacks: these cases are about the GPU nodes and add-ons.
STANDARD_UI = {"openWebui": {"persistence": {"storageClass": "standard"}}}


def test_live_checks_read_the_real_api_server(cluster, tmp_path):
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": "standard"},
                "provisioner": "sglang-sim.invalid/none",
            },
            # Bound (to a class-less pool volume), 5Gi: the stack asks for 8Gi.
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "open-webui-data", "namespace": NS},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "resources": {"requests": {"storage": "5Gi"}},
                },
            },
            # Pending (no volume of class standard), 10Gi: the stack asks for 20Gi of class fast.
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "models", "namespace": NS},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "standard",
                    "resources": {"requests": {"storage": "10Gi"}},
                },
            },
        ]
    )
    cluster.wait_for(
        "claim bound", lambda: cluster.get("pvc", "open-webui-data", "-n", NS)["status"].get("phase") == "Bound"
    )
    claims = {
        "namespace": NS,
        "openWebui": {"persistence": {"size": "8Gi"}},
        "inferenceGroups": [
            stack_values("dev")["inferenceGroups"][0]
            | {"modelVolume": {"type": "pvc", "claimName": "models", "pvc": {"size": "20Gi", "storageClass": "fast"}}}
        ],
        "monitoring": {"enabled": True, "prometheus": {"storageClass": "ssd"}},
    }
    out = live(cluster, tmp_path, stack="dev", set=claims, reads=True)
    assert out["classes"] == ["standard"]
    assert out["claim"] == [NS, "open-webui-data", "5Gi", "Bound", None, ["ReadWriteOnce"]]
    assert out["absent"] is None
    assert out["nodes"] == ["gpu-node-0", "gpu-node-1"]
    assert out["version"] == f"v{SIM_KUBERNETES}"
    assert out["notes"] == []
    assert out["problems"] == [
        "sglang-platform:inferenceGroups[0].modelVolume.pvc.size: claim live-e2e/models exists with 10Gi; it is "
        "Pending, and the API server lets only a bound claim change its size (spec is immutable otherwise): keep "
        "10Gi until it is Bound",
        "sglang-platform:inferenceGroups[0].modelVolume.pvc.storageClass: StorageClass 'fast' does not exist in "
        "the cluster (it has: standard)",
        "sglang-platform:inferenceGroups[0].modelVolume.pvc.storageClass: claim live-e2e/models exists with "
        "StorageClass 'standard'; the StorageClass of a claim cannot change: set 'standard' back, or move the data "
        "to a new claim (another name) or delete this one with its data",
        "sglang-platform:monitoring.prometheus.storageClass: StorageClass 'ssd' does not exist in the cluster (it "
        "has: standard)",
        "sglang-platform:openWebui.persistence.size: claim live-e2e/open-webui-data exists with 5Gi and no "
        "StorageClass; only a claim of a StorageClass with allowVolumeExpansion can grow: keep 5Gi, or move the "
        "data to a new claim (another name) or delete this one with its data",
        # dev does not set versions.kubernetes: the BOM's 1.35.8 is checked against the server.
        "sglang-platform:versions.kubernetes: is 1.35.8, but the cluster runs Kubernetes 1.36.3 (kube-apiserver "
        "/version): the schemas and add-on versions were checked for 1.35.8, not for the cluster; set "
        "versions.kubernetes to 1.36.3 (and pin add-ons that support it)",
    ]
    (note,) = live(cluster, tmp_path, stack="dev", set=ON_THE_SIM, context="no-such-context")["notes"]
    assert note.startswith(
        "live cluster checks skipped (server version, StorageClasses, existing claims, GPU nodes, add-on CRDs, "
        "Helm releases): no usable kubeconfig"
    )


def test_gpu_nodes_as_the_api_server_returns_them(cluster, tmp_path):
    """The GFD labels and allocatable of registered nodes, the DaemonSet pods on them, judged per group."""
    prod = STANDARD_UI | ON_THE_SIM
    # As committed, prod is refused only for the version it declares.
    assert live(cluster, tmp_path, stack="prod", set=STANDARD_UI) == {
        "problems": [
            "sglang-platform:versions.kubernetes: is 1.30.6, but the cluster runs Kubernetes 1.36.3 (kube-apiserver "
            "/version): the schemas and add-on versions were checked for 1.30.6, not for the cluster; set "
            "versions.kubernetes to 1.36.3 (and pin add-ons that support it)"
        ],
        "notes": [
            "deepseek-r1: autoscaling.maxReplicas 2 needs 2 more pods of whole GPU nodes, and the cluster has room "
            "for 0: scale-ups beyond that wait for nodes",
            # (no benchmark note: on two nodes as the reference has them the group leaves the benchmark Job room)
        ],
    }
    # A DaemonSet on gpu-node-1 asking 5 CPUs: what is left there is less than a prod pod asks.
    cluster.apply(
        [
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "node-agent", "namespace": "default"},
                "spec": {
                    "selector": {"matchLabels": {"app": "node-agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "node-agent"}},
                        "spec": {
                            "nodeSelector": {"kubernetes.io/hostname": "gpu-node-1"},
                            "containers": [
                                {"name": "agent", "image": "agent:1.0", "resources": {"requests": {"cpu": "5"}}}
                            ],
                        },
                    },
                },
            }
        ]
    )
    cluster.wait_for(
        "the DaemonSet's pod Running",
        lambda: any(
            p["status"].get("phase") == "Running"
            for p in cluster.get("pods", "-n", "default", "-l", "app=node-agent")["items"]
        ),
    )
    try:
        assert live(cluster, tmp_path, stack="prod", set=prod)["problems"] == [
            "sglang-platform:inferenceGroups[0].autoscaling.minReplicas: deepseek-r1 needs 2 pods (1 x 2) on the GPU "
            "nodes it may use, and they have room for 1 (gpu-node-1 has 123 cpu free, a pod asks 124): add GPU "
            "nodes, lower replicas, or lower the pod's requests"
        ]
    finally:
        cluster.kubectl("delete", "daemonset", "node-agent", "-n", "default", "--wait=true")
    # Each role of a disaggregated service on its own: pd-h200's roles select H200 nodes, the cluster has A800s.
    pd = live(cluster, tmp_path, stack="pd-h200", set=ON_THE_SIM)
    assert pd["problems"] == [
        f"sglang-platform:inferenceGroups[0].nodeSelector: no GPU node can take deepseek-r1-{role}'s pods "
        "(gpu-node-0: labels nvidia.com/gpu.product=NVIDIA-A800-SXM4-80GB do not match nodeSelector; gpu-node-1: "
        "labels nvidia.com/gpu.product=NVIDIA-A800-SXM4-80GB do not match nodeSelector): fix nodeSelector or "
        "tolerations, or the nodes"
        for role in ("decode", "prefill")
    ]


def test_add_ons_the_cluster_runs_as_its_crds_and_config_show(cluster, tmp_path, engine):
    """prod trusting the cluster to run LWS (with gang scheduling), KEDA and Volcano: the CRDs the API server
    serves, and the LWS controller's config where the lws chart keeps it."""
    trusting = (
        STANDARD_UI
        | ON_THE_SIM
        | {
            "lws": {"mode": "present", "gangScheduling": True},
            "keda": {"mode": "present"},
            "volcano": {"mode": "present"},
        }
    )
    assert live(cluster, tmp_path, stack="prod", set=trusting)["notes"][-1] == (
        "could not read the LWS controller's config (ConfigMap lws-system/lws-manager-config): gang scheduling not "
        "verified"
    )
    # The simulation's own controller config (no gang scheduling), where the chart would put it.
    controller = (cluster.run_dir / "lws-config.yaml").read_text()
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "lws-manager-config", "namespace": "lws-system"},
        "data": {"controller_manager_config.yaml": controller},
    }
    cluster.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lws-system"}}, config_map])
    assert live(cluster, tmp_path, stack="prod", set=trusting)["problems"] == [
        "sglang-platform:lws.gangScheduling: true, but the cluster's LWS controller runs without "
        "gangSchedulingManagement.schedulerProvider: volcano (ConfigMap lws-system/lws-manager-config), so groups "
        "would be scheduled pod by pod: configure the controller, or set lws.gangScheduling to false"
    ]
    gang = yaml.safe_load(controller) | {"gangSchedulingManagement": {"schedulerProvider": "volcano"}}
    config_map["data"]["controller_manager_config.yaml"] = yaml.safe_dump(gang)
    cluster.apply([config_map])
    result = live(cluster, tmp_path, stack="prod", set=trusting)
    assert result["problems"] == []
    assert not any("LWS" in note for note in result["notes"])
    # KEDA's and Volcano's CRDs gone: each add-on's key says what is missing.
    cluster.kubectl("delete", "crd", "scaledobjects.keda.sh", "queues.scheduling.volcano.sh")
    assert live(cluster, tmp_path, stack="prod", set=trusting)["problems"] == [
        "sglang-platform:keda.mode: the cluster has no CRD scaledobjects.keda.sh, which autoscaling (a ScaledObject "
        "per group) needs: KEDA 2.17 or later (fallback.behavior), or keda.mode install",
        "sglang-platform:volcano.mode: the cluster has no CRD queues.scheduling.volcano.sh, which scheduler volcano "
        "and the inference Queue needs",
    ]


@pytest.fixture(scope="module")
def team(cluster, workdir) -> Project:
    # The team program's requirements.txt installs the platform as a package (tests/test_package.py runs it from
    # the built wheel); its venv here is the test virtualenv, which nothing in the network namespace may extend
    # from PyPI, so the checkout stands in for the package on PYTHONPATH.
    return Project.copy(
        cluster, ROOT / "examples" / "team_program", workdir / "team", "team", env={"PYTHONPATH": str(ROOT)}
    )


def test_another_teams_program_runs_through_the_engine(team, cluster):
    team.pulumi("stack", "init", "team")
    team.pulumi("up", "--yes", "--skip-preview")
    assert team.outputs() == {
        "baseUrl": "http://r1-distill-api.team-a.svc.cluster.local:8000/v1",
        "service": "r1-distill-api",
    }
    # The program creates its namespace and the group; the claim of its weights is the team's own.
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "team-models", "namespace": "team-a"},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "resources": {"requests": {"storage": "20Gi"}},
                },
            },
        ]
    )
    running_on_distinct_nodes(cluster, "team-a", "r1-distill", size=1)
    assert team.preview().changed() == {}
    team.pulumi("destroy", "--yes", "--skip-preview")
    assert cluster.get("leaderworkerset.leaderworkerset.x-k8s.io", "-n", "team-a")["items"] == []
