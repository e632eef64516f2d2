"""tools/render.py as a user runs it: files written, placeholders, clean failures."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from conftest import ROOT, stack_values

from sglang_platform.facts import bom
from tools import harness

RENDER = [sys.executable, str(ROOT / "tools" / "render.py")]


def render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(RENDER + list(args), capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_prod_render_writes_every_object(tmp_path):
    proc = render("--stack", "prod", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all((tmp_path / "manifests.yaml").read_text()))
    # The benchmark Job's name ends in a hash of what it measures.
    names = [(d["kind"], re.sub(r"-bench-[0-9a-f]{10}$", "-bench-*", d["metadata"]["name"])) for d in docs]
    assert names == [
        ("Namespace", "deepseek"),
        ("Namespace", "gpu-operator"),
        ("Namespace", "keda"),
        ("Namespace", "lws-system"),
        ("Namespace", "monitoring"),
        ("Namespace", "volcano-system"),
        ("ServiceAccount", "deepseek-r1-benchmark"),
        ("ServiceAccount", "deepseek-r1-gateway"),
        ("ServiceAccount", "deepseek-r1-group-gate"),
        ("Secret", "deepseek-r1-api-key"),
        ("Secret", "open-webui-secret-key"),
        ("Secret", "grafana-admin"),
        ("ConfigMap", "deepseek-r1-benchmark"),
        ("ConfigMap", "deepseek-r1-benchmark-script"),
        ("ConfigMap", "deepseek-r1-group-gate"),
        ("ConfigMap", "deepseek-r1-model-download"),
        ("ConfigMap", "sglang-platform-dashboard"),
        ("PersistentVolumeClaim", "open-webui-data"),
        ("Role", "deepseek-r1-benchmark"),
        ("Role", "deepseek-r1-gateway"),
        ("Role", "deepseek-r1-group-gate"),
        ("RoleBinding", "deepseek-r1-benchmark"),
        ("RoleBinding", "deepseek-r1-gateway"),
        ("RoleBinding", "deepseek-r1-group-gate"),
        ("Service", "deepseek-r1-api"),
        ("Service", "deepseek-r1-gateway"),
        ("Service", "open-webui"),
        ("DaemonSet", "deepseek-r1-weights"),
        ("Deployment", "deepseek-r1-gateway"),
        ("Deployment", "open-webui"),
        ("Job", "deepseek-r1-bench-*"),
        ("LeaderWorkerSet", "deepseek-r1"),
        ("NetworkPolicy", "deepseek-r1-benchmark"),
        ("NetworkPolicy", "deepseek-r1-gateway-ingress"),
        ("NetworkPolicy", "deepseek-r1-ingress"),
        ("NetworkPolicy", "deepseek-r1-weights"),
        ("NetworkPolicy", "open-webui-ingress"),
        ("PodDisruptionBudget", "deepseek-r1-gateway-pdb"),
        ("PodDisruptionBudget", "deepseek-r1-pdb"),
        ("PodMonitor", "deepseek-r1-metrics"),
        ("PodMonitor", "sglang-gateway-metrics"),
        ("PodMonitor", "sglang-platform-weights"),
        ("PrometheusRule", "sglang-platform"),
        ("Queue", "inference"),
        ("ScaledObject", "deepseek-r1-autoscaler"),
        ("ServiceMonitor", "dcgm-exporter"),
    ]
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    assert secrets == {
        "deepseek-r1-api-key": {"api-key": harness.PLACEHOLDER},
        "open-webui-secret-key": {"webui-secret-key": harness.PLACEHOLDER},
        "grafana-admin": {"admin-password": harness.PLACEHOLDER, "admin-user": harness.PLACEHOLDER},
    }
    releases = yaml.safe_load((tmp_path / "releases.yaml").read_text())
    # Each at the stack's pin, else its set's (prod: the reference set).
    versions = stack_values("prod")["versions"]
    assert versions["set"] == "reference"
    pins = {**bom.SETS[versions["set"]], **versions}
    assert [(r["name"], r["namespace"], r["chart"], r["version"]) for r in releases] == [
        ("gpu-operator", "gpu-operator", "gpu-operator", pins["gpuOperatorChart"]),
        ("keda", "keda", "keda", pins["kedaChart"]),
        ("lws", "lws-system", "oci://registry.k8s.io/lws/charts/lws", pins["lwsChart"]),
        ("kube-prometheus-stack", "monitoring", "kube-prometheus-stack", pins["kubePrometheusStack"]),
        ("volcano", "volcano-system", "volcano", pins["volcanoChart"]),
    ]
    assert "note: secret sglang-platform:apiKey is not available here; rendered as '[secret]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_render_is_stable(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert render("--stack", "prod", "--out", str(first)).returncode == 0
    assert render("--stack", "prod", "--out", str(second)).returncode == 0
    assert (first / "manifests.yaml").read_text() == (second / "manifests.yaml").read_text()


def test_invalid_stack_file_exits_cleanly_and_writes_nothing(tmp_path):
    bad = tmp_path / "Pulumi.bad.yaml"
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config["config"]["sglang-platform:inferenceGroups"][0]["gpusPerNode"] = 0
    config["config"]["sglang-platform:inferenceGroups"][0]["nodez"] = 2
    bad.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    proc = render("--stack-file", str(bad), "--out", str(out))
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: Pulumi.bad.yaml: invalid stack configuration (2 problems):\n")
    assert (
        "  - sglang-platform:inferenceGroups[0].gpusPerNode: Input should be greater than or equal to 1" in proc.stderr
    )
    assert "  - sglang-platform:inferenceGroups[0].nodez: unknown key (a typo?)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_missing_stack_and_unreadable_file(tmp_path):
    proc = render("--stack", "nosuch", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no stack file" in proc.stderr
    broken = tmp_path / "Pulumi.x.yaml"
    broken.write_text("config: [unclosed")
    proc = render("--stack-file", str(broken), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: cannot read")
    assert not (tmp_path / "o").exists()


def test_missing_required_secret_is_refused_like_pulumi_up():
    result, _ = harness.run_stack("prod", secrets={})
    assert result.resources == []
    assert result.error is not None
    assert result.error.splitlines()[1] == (
        "  - sglang-platform:apiKey: required secret is not set (requireApiKey is true): run "
        "`pulumi config set --secret sglang-platform:apiKey <key>` or set sglang-platform:requireApiKey to false"
    )


def test_another_teams_program_uses_the_component():
    result = harness.run({}, [], stack="team", program=ROOT / "examples" / "team_program" / "__main__.py")
    assert result.error is None
    assert result.outputs == {
        "baseUrl": "http://r1-distill-api.team-a.svc.cluster.local:8000/v1",
        "service": "r1-distill-api",
    }
    assert result.k8s_object("LeaderWorkerSet", "r1-distill")["metadata"]["namespace"] == "team-a"


def test_docs_list_the_e2e_overrides_of_the_committed_stacks():
    from tools.sim_stacks import BEGIN, END, readme_block

    readme = (ROOT / "docs" / "real-engine.md").read_text()
    assert readme[readme.index(BEGIN) : readme.index(END) + len(END)] == readme_block()
