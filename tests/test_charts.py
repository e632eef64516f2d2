"""Chart mirrors (sglang-platform:chartMirror and <addon>.chartMirror): how each chart is resolved, what the
render shows, and the problems a directory mirror that cannot serve a pinned chart gives at preview."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
from conftest import API_KEY, REQUIRED_SECRETS, Capability, run_with, stack_values, unavailable

from sglang_platform.config import ConfigError, validate
from sglang_platform.render.charts import ChartSource, chart_source
from sglang_platform.render.k8s import away_from_gpu_nodes
from tools import chart_source as test_charts
from tools import harness, sim_stacks

PROD_CHARTS = {
    "gpu-operator": "gpu-operator-v24.9.1",
    "volcano": "volcano-1.10.2",
    "lws": "lws-0.10.0",
    "keda": "keda-2.17.2",
    "kube-prometheus-stack": "kube-prometheus-stack-88.3.0",
}


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(raw, REQUIRED_SECRETS)
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def fake_mirror(root: Path, charts: dict[str, str] = PROD_CHARTS) -> Path:
    """A directory of unpacked charts: <chart>-<version>/Chart.yaml, as `helm pull --untar` leaves them."""
    for name, directory in charts.items():
        (root / directory).mkdir(parents=True)
        version = directory.removeprefix(f"{name}-")
        (root / directory / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: {version}\n")
    return root


def prod_with(**keys) -> dict:
    raw = copy.deepcopy(stack_values("prod"))
    raw.update(keys)
    return raw


def test_each_chart_from_its_project_without_a_mirror():
    assert chart_source("keda", "2.20.2", "https://kedacore.github.io/charts", None) == ChartSource(
        "keda", "https://kedacore.github.io/charts", "2.20.2"
    )
    # An OCI path names the chart under it and needs no repository.
    assert chart_source("lws", "0.10.0", "oci://registry.k8s.io/lws/charts", "") == ChartSource(
        "oci://registry.k8s.io/lws/charts/lws", None, "0.10.0"
    )


def test_a_mirror_replaces_every_repository(tmp_path):
    assert chart_source("lws", "0.10.0", "oci://registry.k8s.io/lws/charts", "https://charts.corp/helm") == (
        ChartSource("lws", "https://charts.corp/helm", "0.10.0")
    )
    assert chart_source("keda", "2.20.2", "https://kedacore.github.io/charts", "oci://harbor.corp/mirror/") == (
        ChartSource("oci://harbor.corp/mirror/keda", None, "2.20.2")
    )
    # A directory holds <chart>-<version>/ exactly as pinned (gpu-operator's version keeps its v); a relative
    # one is resolved against the project root, and Helm reads the version from the chart itself.
    assert chart_source("gpu-operator", "v24.9.1", "https://helm.ngc.nvidia.com/nvidia", "mirror", tmp_path) == (
        ChartSource(str(tmp_path / "mirror" / "gpu-operator-v24.9.1"), None, None)
    )
    assert chart_source("volcano", "1.9.0", "https://x", "/srv/charts") == ChartSource(
        "/srv/charts/volcano-1.9.0", None, None
    )


def test_render_shows_every_release_from_the_directory_mirror(tmp_path):
    mirror = fake_mirror(tmp_path)
    result = run_with("prod", lambda v: v.update(chartMirror=str(mirror)), secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    assert {r["chart"]: (r["repository"], r["version"]) for r in harness.releases(result)} == {
        str(mirror / d): (None, None) for d in PROD_CHARTS.values()
    }


def test_an_add_on_mirror_wins_over_the_stack_mirror(tmp_path):
    mirror = fake_mirror(tmp_path)

    def mutate(values):
        values["chartMirror"] = str(mirror)
        values["keda"]["chartMirror"] = "oci://harbor.corp/mirror"
        values["monitoring"]["chartMirror"] = "https://charts.corp/helm"

    result = run_with("prod", mutate, secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    by_name = {r["name"]: (r["chart"], r["repository"], r["version"]) for r in harness.releases(result)}
    assert by_name["keda"] == ("oci://harbor.corp/mirror/keda", None, "2.17.2")
    assert by_name["kube-prometheus-stack"] == ("kube-prometheus-stack", "https://charts.corp/helm", "88.3.0")
    assert by_name["lws"] == (str(mirror / "lws-0.10.0"), None, None)


def test_the_chart_source_serves_both_stacks_as_the_simulation_runs_them():
    """The chart source the tests and the e2e suite read (tools/test_charts.py: SGLANG_PLATFORM_CHART_MIRROR, else
    the project's cache) holds every chart both stacks install with the simulation's overrides (prod pins KEDA
    2.17.2 and Volcano 1.10.2 for Kubernetes 1.30; the simulation runs 2.20.2 and 1.9.0), as preview checks a
    directory mirror."""
    from sglang_platform.render.charts import installed_charts

    source, _ = test_charts.source_dir()
    for name in ("dev", "prod"):
        values = sim_stacks.merged(stack_values(name), sim_stacks.overrides(name, source))
        without_mirror = validate({**values, "chartMirror": ""}, REQUIRED_SECRETS)
        missing = [
            f"{c.chart}-{c.version}"
            for c in installed_charts(without_mirror)
            if test_charts.chart_dir(c.chart, c.version) is None
        ]
        if missing:
            unavailable(Capability.CHARTS, test_charts.missing(missing))
        validate(values, REQUIRED_SECRETS)


def test_a_directory_that_cannot_serve_a_pinned_chart_is_refused_at_preview(tmp_path):
    assert problems(prod_with(chartMirror=str(tmp_path / "nowhere"))) == [
        f"sglang-platform:chartMirror: directory {tmp_path / 'nowhere'} does not exist (it should hold "
        "gpu-operator-v24.9.1/, volcano-1.10.2/, lws-0.10.0/, keda-2.17.2/, kube-prometheus-stack-88.3.0/)"
    ]
    mirror = fake_mirror(tmp_path / "m", {k: v for k, v in PROD_CHARTS.items() if k != "lws"})
    (mirror / "keda-2.17.2" / "Chart.yaml").write_text("name: keda\nversion: 2.19.0\n")
    assert problems(prod_with(chartMirror=str(mirror))) == [
        f"sglang-platform:chartMirror: {mirror / 'keda-2.17.2' / 'Chart.yaml'} is chart 'keda' version '2.19.0', "
        "not keda 2.17.2",
        f"sglang-platform:chartMirror: {mirror / 'lws-0.10.0'} is not an unpacked chart (no Chart.yaml): on a "
        "machine with access run `helm pull oci://registry.k8s.io/lws/charts/lws --version 0.10.0 --untar "
        f"--untardir <tmp>`, then copy <tmp>/lws to {mirror / 'lws-0.10.0'} (docs/add-ons.md, Air-gapped clusters)",
    ]


def test_an_add_on_mirror_problem_names_the_add_on_key(tmp_path):
    raw = prod_with()
    raw["volcano"] = raw["volcano"] | {"chartMirror": str(tmp_path)}
    assert problems(raw) == [
        f"sglang-platform:volcano.chartMirror: {tmp_path / 'volcano-1.10.2'} is not an unpacked chart (no "
        "Chart.yaml): on a machine with access run `helm pull volcano --repo https://volcano-sh.github.io/"
        f"helm-charts --version 1.10.2 --untar --untardir <tmp>`, then copy <tmp>/volcano to "
        f"{tmp_path / 'volcano-1.10.2'} (docs/add-ons.md, Air-gapped clusters)"
    ]


def test_mirror_keys_refuse_other_schemes_and_unused_settings():
    raw = copy.deepcopy(stack_values("dev"))
    raw["chartMirror"] = "s3://bucket/charts"
    raw["gpuOperator"]["chartMirror"] = "oci://harbor.corp/x"
    raw["monitoring"] = {"enabled": False, "values": {"grafana": {"enabled": False}}}
    assert problems(raw) == [
        "sglang-platform:chartMirror: 's3://bucket/charts' is neither a Helm repository (https://...), an OCI "
        "registry path (oci://...) nor a local directory of unpacked charts",
    ]
    raw["chartMirror"] = ""
    assert problems(raw) == [
        "sglang-platform:gpuOperator.chartMirror: only used when mode is install (it is present)",
        "sglang-platform:inferenceGroups[0].autoscaling: autoscaling reads SGLang's metrics from Prometheus: enable "
        "sglang-platform:monitoring or set sglang-platform:keda.prometheusAddress to a Prometheus that scrapes the "
        "groups",
        "sglang-platform:monitoring.values: only used when monitoring.enabled is true",
    ]


def test_keda_and_monitoring_take_raw_values_under_the_typed_ones(caplog):
    def mutate(values):
        values["keda"]["values"] = {
            "webhooks": {"enabled": False},
            "crds": {"additionalAnnotations": {"helm.sh/resource-policy": "delete"}},
        }
        values["monitoring"]["values"] = {"prometheusOperator": {"admissionWebhooks": {"enabled": False}}}

    with caplog.at_level(logging.WARNING):
        result = run_with("dev", mutate)
    assert result.error is None, result.error
    by_name = {r["name"]: r["values"] for r in harness.releases(result)}
    assert by_name["keda"] == {
        "webhooks": {"enabled": False},
        # The typed value wins, and the user is told so.
        "crds": {"install": True, "additionalAnnotations": {"helm.sh/resource-policy": "keep"}},
        # The platform's default where the raw values set nothing (tests/test_placement.py).
        "affinity": away_from_gpu_nodes(),
    }
    assert by_name["kube-prometheus-stack"]["prometheusOperator"] == {
        "admissionWebhooks": {"enabled": False},
        "affinity": away_from_gpu_nodes(),
    }
    assert (
        "sglang-platform:keda.values.crds.additionalAnnotations.helm.sh/resource-policy is also set by a typed key; "
        "the typed value wins" in caplog.text
    )
