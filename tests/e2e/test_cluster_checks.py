"""The simulated cluster itself (no way out of its network namespace), config/live.py against its real API
server, and another team's program (examples/team_program) through the engine."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from conftest import ROOT

from tools.engine import Project

from .scenario import running_on_distinct_nodes

SIM_OPTIONS = ("--nodes", "2", "--pvs", "4", "--pv-size", "100Gi")
NS = "live-e2e"


def test_nothing_leaves_the_network_namespace(cluster):
    result = cluster.exec("curl", "-v", "-m", "3", "https://10.0.0.1", check=False)
    assert result.returncode == 7, result.output
    assert "Network is unreachable" in result.output


LIVE_SCRIPT = textwrap.dedent(
    """
    import copy, json, sys
    import yaml
    sys.path.insert(0, sys.argv[1])
    from config import validate
    from config.live import ClusterAccess, connect, live_problems

    raw = yaml.safe_load(open(sys.argv[1] + "/Pulumi.dev.yaml"))["config"]
    raw = {k.split(":", 1)[1]: v for k, v in raw.items()}
    raw["namespace"] = "live-e2e"
    raw["openWebui"]["persistence"] = {"size": "8Gi"}
    raw["inferenceGroups"][0]["modelVolume"]["pvc"] = {"size": "20Gi", "storageClass": "fast"}
    raw["monitoring"]["prometheus"]["storageClass"] = "ssd"
    cfg = validate(raw, {"webuiSecretKey", "grafanaAdminPassword"})
    problems, notes = live_problems(cfg)
    cluster = connect()
    out = {
        "problems": sorted(f"{p.key}: {p.message}" for p in problems),
        "notes": notes,
        "classes": sorted(cluster.storage_classes()),
        "claim": list(cluster.claim("live-e2e", "open-webui-data").__dict__.values()),
        "absent": cluster.claim("live-e2e", "nothing-here"),
        "wrong_context": live_problems(cfg, access=ClusterAccess(context="no-such-context"))[1],
    }
    print(json.dumps(out))
    """
)


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
    script = tmp_path / "live.py"
    script.write_text(LIVE_SCRIPT)
    out = json.loads(cluster.exec(sys.executable, str(script), str(ROOT)).stdout)
    assert out["classes"] == ["standard"]
    assert out["claim"] == [NS, "open-webui-data", "5Gi", "Bound", None, ["ReadWriteOnce"]]
    assert out["absent"] is None
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
    ]
    (note,) = out["wrong_context"]
    assert note.startswith("live cluster checks skipped (StorageClasses, existing claims): no usable kubeconfig")


@pytest.fixture(scope="module")
def team(cluster, workdir) -> Project:
    # The team program imports the platform's components from this checkout (a package from issue #12 on).
    return Project.copy(
        cluster, ROOT / "examples" / "team_program", workdir / "team", "team", env={"PYTHONPATH": str(ROOT)}
    )


def test_another_teams_program_runs_through_the_engine(team, cluster):
    # Its namespace and claim are the team's own (the program creates only the group).
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
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
    team.pulumi("stack", "init", "team")
    team.pulumi("up", "--yes", "--skip-preview")
    assert team.outputs() == {"baseUrl": "http://r1-distill-api.team-a.svc.cluster.local:8000/v1"}
    running_on_distinct_nodes(cluster, "team-a", "r1-distill", size=1)
    assert team.preview().changed() == {}
    team.pulumi("destroy", "--yes", "--skip-preview")
    assert cluster.get("leaderworkerset.leaderworkerset.x-k8s.io", "-n", "team-a")["items"] == []
