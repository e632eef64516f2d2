"""The upgrade paths from what the cluster runs (config/rules/upgrades.py, read by config/live.py): the GPU Operator
one major at a time, no chart older than its running release, no older Open WebUI; through live_problems with a
fake cluster holding Helm's own release records. tests/e2e/test_upgrade.py runs the same against the real engine."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import re
from pathlib import Path

import pytest
from conftest import REQUIRED_SECRETS, stack_values
from test_live import FakeCluster

from sglang_platform.config import validate
from sglang_platform.live.cluster import live_problems
from sglang_platform.rules import upgrades
from tools import harness

RELEASE = "kubernetes:helm.sh/v3:Release"
VERSION_KEYS = {
    ("versions", "gpuOperatorChart"),
    ("versions", "volcanoChart"),
    ("versions", "kedaChart"),
    ("versions", "kubePrometheusStack"),
    ("versions", "lwsChart"),
    ("versions", "openWebuiImage"),
}


def helm_secret(name: str, revision: int, status: str, chart: str, version: str, gzipped: bool = True) -> dict:
    """One of Helm's release records as the API server returns it: data.release is base64 (the Secret's) of
    base64 (Helm's) of the gzipped release JSON."""
    body = json.dumps({"name": name, "version": revision, "chart": {"metadata": {"name": chart, "version": version}}})
    raw = gzip.compress(body.encode()) if gzipped else body.encode()
    return {
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "labels": {"owner": "helm", "name": name, "status": status, "version": str(revision)},
        },
        "type": "helm.sh/release.v1",
        "data": {"release": base64.b64encode(base64.b64encode(raw)).decode()},
    }


def prod_current() -> dict:
    """prod at the defaults (the current set), on hosts with the R580 driver its SGLang image needs."""
    raw = copy.deepcopy(stack_values("prod"))
    raw.pop("versions")
    raw["gpuNodes"]["driverVersion"] = "580.95.05"
    return raw


def prod_reference() -> dict:
    return copy.deepcopy(stack_values("prod"))


def running(*records: tuple[str, str, str, str], statuses: tuple[str, ...] = ()) -> dict:
    """Helm records by (namespace, release): one deployed revision per (namespace, release, chart, version)."""
    return {(ns, name): [helm_secret(name, 1, "deployed", chart, version)] for ns, name, chart, version in records}


PROD_REFERENCE_RELEASES = running(
    ("gpu-operator", "gpu-operator", "gpu-operator", "v24.9.1"),
    ("volcano-system", "volcano", "volcano", "1.10.2"),
    ("lws-system", "lws", "lws", "0.10.0"),
    ("keda", "keda", "keda", "2.17.2"),
    ("monitoring", "kube-prometheus-stack", "kube-prometheus-stack", "88.3.0"),
)
PROD_CURRENT_RELEASES = running(
    ("gpu-operator", "gpu-operator", "gpu-operator", "v26.7.0"),
    ("volcano-system", "volcano", "volcano", "1.15.1"),
    ("lws-system", "lws", "lws", "0.10.0"),
    ("keda", "keda", "keda", "2.20.2"),
    ("monitoring", "kube-prometheus-stack", "kube-prometheus-stack", "88.5.3"),
)


def webui(image: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [{"name": "open-webui", "image": image}]}}}}


def upgrade_problems(raw: dict, cluster: FakeCluster) -> tuple[list[str], list[str]]:
    problems, notes = live_problems(validate(raw, REQUIRED_SECRETS), cluster)
    return [f"{p.key}: {p.message}" for p in problems if p.loc in VERSION_KEYS], notes


def test_the_release_names_are_the_ones_the_components_install():
    """RELEASE_NAMES and the namespaces releases() reads are where the render puts each chart."""
    result, _ = harness.run_stack("prod")
    assert result.error is None, result.error
    rendered = {(r.spec["namespace"], r.spec["name"]) for r in result.of_type(RELEASE)}
    wanted = {(r.namespace, r.name) for r in upgrades.releases(validate(prod_reference(), REQUIRED_SECRETS))}
    assert wanted == rendered
    assert {r.addon for r in upgrades.releases(validate(prod_reference(), REQUIRED_SECRETS))} == {
        "gpu-operator",
        "volcano",
        "lws",
        "keda",
        "kube-prometheus-stack",
    }


def test_a_two_major_gpu_operator_jump_is_refused_with_the_step_between():
    found, _ = upgrade_problems(prod_current(), FakeCluster(helm_secrets=PROD_REFERENCE_RELEASES))
    assert found == [
        "sglang-platform:versions.gpuOperatorChart: v26.7.0 is two majors after v24.9.1, which the cluster runs "
        "(Helm release gpu-operator/gpu-operator); NVIDIA supports upgrading the GPU Operator one major at a time: "
        "set v25.10.1 first and `pulumi up`, then v26.7.0 (docs/upgrades.md, GPU Operator)"
    ]


def test_the_step_through_the_middle_major_passes_and_so_does_the_next():
    middle = prod_current()
    middle["versions"] = {"gpuOperatorChart": "v25.10.1"}
    assert upgrade_problems(middle, FakeCluster(helm_secrets=PROD_REFERENCE_RELEASES))[0] == []
    after_middle = PROD_REFERENCE_RELEASES | running(("gpu-operator", "gpu-operator", "gpu-operator", "v25.10.1"))
    assert upgrade_problems(prod_current(), FakeCluster(helm_secrets=after_middle))[0] == []


def test_every_downgrade_is_refused_at_once():
    cluster = FakeCluster(
        helm_secrets=PROD_CURRENT_RELEASES,
        deployments={("deepseek", "open-webui"): webui("ghcr.io/open-webui/open-webui:v0.12.4")},
    )
    found, _ = upgrade_problems(prod_reference(), cluster)
    refusal = (
        "is older than {}, which the cluster runs (Helm release {}); a chart downgrade is refused: Helm leaves the "
        "newer CRDs of a chart's crds/ directory in place and an older chart's templated CRDs would replace the ones "
        "live objects are stored with. Keep {} or set a newer one (docs/upgrades.md, Downgrades)"
    )
    assert found == [
        "sglang-platform:versions.gpuOperatorChart: v24.9.1 "
        + refusal.format("v26.7.0", "gpu-operator/gpu-operator", "v26.7.0"),
        f"sglang-platform:versions.volcanoChart: 1.10.2 {refusal.format('1.15.1', 'volcano-system/volcano', '1.15.1')}",
        f"sglang-platform:versions.kedaChart: 2.17.2 {refusal.format('2.20.2', 'keda/keda', '2.20.2')}",
        "sglang-platform:versions.kubePrometheusStack: 88.3.0 "
        + refusal.format("88.5.3", "monitoring/kube-prometheus-stack", "88.5.3"),
        "sglang-platform:versions.openWebuiImage: ghcr.io/open-webui/open-webui:v0.5.14 is older than "
        "ghcr.io/open-webui/open-webui:v0.12.4, which Deployment deepseek/open-webui runs; Open WebUI migrates its "
        "database forward when it starts and has no way back, so a downgrade is refused: keep "
        "ghcr.io/open-webui/open-webui:v0.12.4 or a newer one (going back means restoring the data volume saved "
        "before the upgrade, docs/upgrades.md, Downgrades)",
    ]


def test_the_same_versions_and_a_fresh_cluster_pass():
    same = FakeCluster(
        helm_secrets=PROD_REFERENCE_RELEASES,
        deployments={("deepseek", "open-webui"): webui("ghcr.io/open-webui/open-webui:v0.5.14")},
    )
    assert upgrade_problems(prod_reference(), same)[0] == []
    assert upgrade_problems(prod_current(), FakeCluster())[0] == []


def test_an_older_sglang_image_is_no_downgrade_refusal():
    """The serving images keep no state: going back rolls the pods like any new image."""
    raw = prod_current()
    raw["versions"] = {"sglangImage": "lmsysorg/sglang:v0.4.4-cu124"}
    cluster = FakeCluster(
        helm_secrets=PROD_CURRENT_RELEASES,
        deployments={("deepseek", "open-webui"): webui("ghcr.io/open-webui/open-webui:v0.12.4")},
    )
    assert upgrade_problems(raw, cluster)[0] == []


def test_the_version_is_the_newest_deployed_revision():
    """A failed upgrade leaves the last deployed revision running: that is the version compared. A pending one (an
    interrupted `up`) is named in the notes."""
    secrets = [
        helm_secret("gpu-operator", 1, "superseded", "gpu-operator", "v24.9.1"),
        helm_secret("gpu-operator", 2, "deployed", "gpu-operator", "v25.10.1", gzipped=False),
        helm_secret("gpu-operator", 3, "failed", "gpu-operator", "v26.7.0"),
    ]
    assert upgrades.newest_revision(secrets) == upgrades.Deployed(3, "failed", "v25.10.1")
    secrets[2] = helm_secret("gpu-operator", 3, "pending-upgrade", "gpu-operator", "v26.7.0")
    cluster = FakeCluster(helm_secrets=PROD_REFERENCE_RELEASES | {("gpu-operator", "gpu-operator"): secrets})
    found, notes = upgrade_problems(prod_current(), cluster)
    assert found == []
    assert (
        "Helm release gpu-operator/gpu-operator is pending-upgrade at revision 3: a Helm operation on it was "
        "interrupted, and Helm refuses another until it is rolled back (docs/upgrades.md, Troubleshooting)" in notes
    )


def test_records_that_are_not_helms_are_ignored():
    assert upgrades.newest_revision([{"metadata": {"labels": {"owner": "someone"}}}]) is None
    bad = helm_secret("keda", 1, "deployed", "keda", "2.20.2")
    bad["data"]["release"] = base64.b64encode(b"not helm").decode()
    assert upgrades.newest_revision([bad]) == upgrades.Deployed(1, "deployed", None)


def test_unreadable_release_records_are_a_note():
    cluster = FakeCluster(
        helm_secrets=PROD_REFERENCE_RELEASES,
        forbidden={"list the Secrets of Helm release gpu-operator/gpu-operator"},
    )
    found, notes = upgrade_problems(prod_current(), cluster)
    assert found == []
    assert (
        "live check of Helm release gpu-operator/gpu-operator (the chart version it runs) skipped: not allowed to "
        "list the Secrets of Helm release gpu-operator/gpu-operator (Forbidden)" in notes
    )


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("ghcr.io/open-webui/open-webui:v0.12.4", "0.12.4"),
        ("registry:5000/open-webui:0.5.14", "0.5.14"),
        ("ghcr.io/open-webui/open-webui@sha256:" + "a" * 64, None),
        ("ghcr.io/open-webui/open-webui:main", None),
        ("registry:5000/open-webui", None),
    ],
)
def test_image_tag_version(image, version):
    found = upgrades.image_tag_version(image)
    assert (str(found) if found else None) == version


# --- the CRDs of a chart's crds/ directories, before its upgrade ----------------------------------------------------


def crd(name: str, schema: dict | None = None) -> dict:
    plural, group = name.split(".", 1)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Cluster",
            "names": {"plural": plural, "kind": plural.title().rstrip("s")},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema or {"type": "object"}},
                }
            ],
        },
    }


NEW_SCHEMA = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"hostNetwork": {}}}}}


def mirror(tmp_path, charts: dict[str, str]):
    """A directory mirror with a Chart.yaml per chart-version, and the GPU Operator's CRDs: its own crds/ holds
    clusterpolicies (a newer schema) and computedomains (new); node-feature-discovery's holds nodefeatures."""
    import yaml

    for chart, version in charts.items():
        d = tmp_path / f"{chart}-{version}"
        d.mkdir(parents=True)
        (d / "Chart.yaml").write_text(yaml.safe_dump({"name": chart, "version": version}))
    op = tmp_path / f"gpu-operator-{charts['gpu-operator']}"
    (op / "crds").mkdir()
    (op / "crds" / "clusterpolicies.yaml").write_text(yaml.safe_dump(crd("clusterpolicies.nvidia.com", NEW_SCHEMA)))
    (op / "crds" / "computedomains.yaml").write_text(yaml.safe_dump(crd("computedomains.resource.nvidia.com")))
    (op / "crds" / "README.md").write_text("not a CRD")
    nfd = op / "charts" / "node-feature-discovery" / "crds"
    nfd.mkdir(parents=True)
    (nfd / "nfd.yaml").write_text(
        yaml.safe_dump_all([crd("nodefeatures.nfd.k8s-sigs.io"), crd("extra.nfd.k8s-sigs.io")])
    )
    return tmp_path


CURRENT_CHARTS = {
    "gpu-operator": "v26.7.0",
    "volcano": "1.15.1",
    "lws": "0.10.0",
    "keda": "2.20.2",
    "kube-prometheus-stack": "88.5.3",
}


def test_the_new_charts_crds_are_applied_before_its_upgrade(tmp_path):
    """From v25.10.1 to v26.7.0: clusterpolicies is held with the older schema, computedomains is absent (the
    chart's own crds/); nodefeatures is as the subchart has it, and its extra CRD (absent) is not asked for."""
    raw = prod_current()
    raw["chartMirror"] = str(mirror(tmp_path, CURRENT_CHARTS))
    held = {
        "clusterpolicies.nvidia.com": crd("clusterpolicies.nvidia.com"),
        "nodefeatures.nfd.k8s-sigs.io": crd("nodefeatures.nfd.k8s-sigs.io"),
    }
    running = PROD_CURRENT_RELEASES | {
        ("gpu-operator", "gpu-operator"): [helm_secret("gpu-operator", 1, "deployed", "gpu-operator", "v25.10.1")]
    }
    found, _ = upgrade_problems(raw, FakeCluster(helm_secrets=running, crds=held))
    chart = tmp_path / "gpu-operator-v26.7.0"
    assert found == [
        "sglang-platform:versions.gpuOperatorChart: v26.7.0 brings CRDs the cluster does not hold as the chart has "
        "them (clusterpolicies.nvidia.com, computedomains.resource.nvidia.com); Helm installs a chart's crds/ on the "
        "first install only and never upgrades them: apply them first, `kubectl apply --server-side "
        f"--force-conflicts -f {chart}/crds/`, then preview again (docs/upgrades.md, CRDs)"
    ]
    held["clusterpolicies.nvidia.com"] = crd("clusterpolicies.nvidia.com", NEW_SCHEMA)
    held["computedomains.resource.nvidia.com"] = crd("computedomains.resource.nvidia.com")
    assert upgrade_problems(raw, FakeCluster(helm_secrets=running, crds=held))[0] == []
    # A subchart's CRD the cluster holds in another form is asked for, with its own directory.
    held["nodefeatures.nfd.k8s-sigs.io"] = crd("nodefeatures.nfd.k8s-sigs.io", NEW_SCHEMA)
    (message,) = upgrade_problems(raw, FakeCluster(helm_secrets=running, crds=held))[0]
    assert "(nodefeatures.nfd.k8s-sigs.io)" in message
    assert f"-f {chart}/charts/node-feature-discovery/crds/`" in message


def test_without_a_directory_mirror_the_notes_give_the_command():
    running = PROD_CURRENT_RELEASES | {
        ("gpu-operator", "gpu-operator"): [helm_secret("gpu-operator", 1, "deployed", "gpu-operator", "v25.10.1")]
    }
    found, notes = upgrade_problems(prod_current(), FakeCluster(helm_secrets=running))
    assert found == []
    assert (
        "Helm release gpu-operator/gpu-operator goes to gpu-operator v26.7.0: Helm does not upgrade the CRDs of its "
        "crds/ directories; apply them before `pulumi up`: `helm show crds gpu-operator --repo "
        "https://helm.ngc.nvidia.com/nvidia --version v26.7.0 | kubectl apply --server-side --force-conflicts -f -` "
        "(docs/upgrades.md, CRDs)" in notes
    )
    # Nothing to upgrade, nothing to apply.
    assert not [
        n
        for n in upgrade_problems(prod_current(), FakeCluster(helm_secrets=PROD_CURRENT_RELEASES))[1]
        if "goes to" in n
    ]


def test_the_crds_of_a_real_chart():
    """GPU Operator v26.7.0: five CRDs of its own (the DRA ones new in 26.x, which its own pre-upgrade hook does not
    apply) and node-feature-discovery's three."""
    from conftest import chart

    found = upgrades.chart_crds(chart("gpu-operator", "v26.7.0"))
    assert sorted((c.directory, c.name) for c in found) == [
        ("charts/node-feature-discovery/crds/", "nodefeaturegroups.nfd.k8s-sigs.io"),
        ("charts/node-feature-discovery/crds/", "nodefeaturerules.nfd.k8s-sigs.io"),
        ("charts/node-feature-discovery/crds/", "nodefeatures.nfd.k8s-sigs.io"),
        ("crds/", "clusterpolicies.nvidia.com"),
        ("crds/", "computedomaincliques.resource.nvidia.com"),
        ("crds/", "computedomains.resource.nvidia.com"),
        ("crds/", "gpuclusters.nvidia.com"),
        ("crds/", "nvidiadrivers.nvidia.com"),
    ]
    hook = (chart("gpu-operator", "v26.7.0") / "templates" / "upgrade_crd.yaml").read_text()
    assert "computedomains" not in hook and "nvidia.com_clusterpolicies.yaml" in hook


def test_every_section_a_message_names_is_in_the_operators_guide():
    """Each refusal and note ends with (docs/upgrades.md, <section>): that section exists there."""
    source = Path(upgrades.__file__).read_text()
    named = set(re.findall(r"\(\{DOCS\}, ([A-Z][A-Za-z ]+)\)", source))
    assert named == {"GPU Operator", "Downgrades", "Troubleshooting", "CRDs"}
    headings = {
        line.removeprefix("## ").strip()
        for line in (harness.ROOT / upgrades.DOCS).read_text().splitlines()
        if line.startswith("## ")
    }
    assert named <= headings, named - headings
