"""Where the tests get chart contents (tools/chart_source.py): a named mirror, else the project's cache, which
`pull` fills from each chart's own repository, a Helm repository or an OCI registry, here served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
import yaml
from fake_upstream import FakeUpstream, Reply

from tools import chart_source
from tools.chart_source import Chart


def chart_archive(name: str, version: str, subcharts: dict[str, str] | None = None, values: str = "a: 1\n") -> bytes:
    """A chart as `helm package` writes it: one top directory, dependencies as archives under charts/."""

    def add(tar: tarfile.TarFile, path: str, data: bytes) -> None:
        info = tarfile.TarInfo(path)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        add(tar, f"{name}/Chart.yaml", f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode())
        add(tar, f"{name}/values.yaml", values.encode())
        for sub, sub_version in (subcharts or {}).items():
            add(tar, f"{name}/charts/{sub}-{sub_version}.tgz", chart_archive(sub, sub_version, values="sub: true\n"))
    return out.getvalue()


def test_every_chart_a_committed_stack_installs_is_pinned():
    pinned = {str(c) for c in chart_source.pinned_charts()}
    # the BOM's, prod's own (KEDA and Volcano for Kubernetes 1.30) and the simulation's overrides
    assert {"lws@0.10.0", "keda@2.17.2", "keda@2.20.2", "volcano@1.10.2", "volcano@1.9.0"} <= pinned
    assert "kube-prometheus-stack@88.3.0" in pinned and "gpu-operator@v24.9.1" in pinned
    # the releases whose CRDs are kept, so that tests/test_crds.py can compare them with their charts
    assert {"volcano@1.15.1", "kube-prometheus-stack@88.5.3"} <= pinned
    lws = [c for c in chart_source.pinned_charts() if c.name == "lws"]
    assert {c.repo for c in lws} == {"oci://registry.k8s.io/lws/charts"}


def test_a_named_mirror_is_the_only_source(tmp_path, monkeypatch):
    (tmp_path / "keda-2.17.2").mkdir()
    (tmp_path / "keda-2.17.2" / "Chart.yaml").write_text("name: keda\nversion: 2.17.2\n")
    monkeypatch.setenv(chart_source.MIRROR_ENV, str(tmp_path))
    assert chart_source.chart_dir("keda", "2.17.2") == tmp_path / "keda-2.17.2"
    assert chart_source.chart_dir("keda", "2.20.2") is None
    assert chart_source.missing(["keda-2.20.2"]) == (
        f"keda-2.20.2 not in {chart_source.MIRROR_ENV}={tmp_path}: run `{chart_source.COMMAND}`"
    )


def test_without_a_mirror_the_cache_and_the_command(monkeypatch):
    monkeypatch.delenv(chart_source.MIRROR_ENV, raising=False)
    assert chart_source.source_dir()[0] == chart_source.CACHE
    message = chart_source.missing(["lws-0.10.0"])
    assert message == (
        f"lws-0.10.0 not in the project's chart cache (.cache/charts/): run `{chart_source.COMMAND}`, or set "
        f"{chart_source.MIRROR_ENV} to a chart mirror"
    )


def index(entries: dict[str, list[dict]]) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "entries": entries})


def test_pull_from_a_helm_repository(tmp_path, upstream):
    archive = chart_archive("kube-prometheus-stack", "88.3.0", {"grafana": "12.10.4"})
    upstream.add(
        "/charts/index.yaml",
        index(
            {
                "kube-prometheus-stack": [
                    {"version": "88.5.3", "urls": ["other.tgz"]},
                    {
                        "version": "88.3.0",
                        "urls": ["kube-prometheus-stack-88.3.0.tgz"],
                        "digest": hashlib.sha256(archive).hexdigest(),
                    },
                ]
            }
        ),
    )
    upstream.add("/charts/kube-prometheus-stack-88.3.0.tgz", archive)
    chart = Chart("kube-prometheus-stack", "88.3.0", f"{upstream.url}/charts")
    path = chart_source.pull_one(chart, tmp_path)
    assert path == tmp_path / "kube-prometheus-stack-88.3.0"
    assert yaml.safe_load((path / "values.yaml").read_text()) == {"a": 1}
    # the subchart is unpacked where the tests read its values, its archive gone
    assert sorted(p.name for p in (path / "charts").iterdir()) == ["grafana"]
    assert yaml.safe_load((path / "charts" / "grafana" / "values.yaml").read_text()) == {"sub": True}
    # a second pull of what is there fetches nothing
    seen = len(upstream.seen)
    assert chart_source.pull([chart], tmp_path) == []
    assert len(upstream.seen) == seen


def test_a_v_prefixed_version_and_an_absolute_url(tmp_path, upstream):
    archive = chart_archive("gpu-operator", "v24.9.1")
    upstream.add(
        "/nvidia/index.yaml",
        index({"gpu-operator": [{"version": "v24.9.1", "urls": [f"{upstream.url}/files/gpu-operator-v24.9.1.tgz"]}]}),
    )
    upstream.add("/files/gpu-operator-v24.9.1.tgz", archive)
    path = chart_source.pull_one(Chart("gpu-operator", "v24.9.1", f"{upstream.url}/nvidia"), tmp_path)
    assert path.name == "gpu-operator-v24.9.1" and (path / "Chart.yaml").is_file()


@pytest.mark.parametrize(
    ("entry", "archive", "why"),
    [
        ({"version": "2.17.2", "urls": ["keda.tgz"], "digest": "0" * 64}, chart_archive("keda", "2.17.2"), "sha256"),
        ({"version": "2.17.1", "urls": ["keda.tgz"]}, chart_archive("keda", "2.17.1"), "lists no version 2.17.2"),
        ({"version": "2.17.2", "urls": ["keda.tgz"]}, chart_archive("keda", "2.16.0"), "holds keda 2.16.0"),
        ({"version": "2.17.2", "urls": ["gone.tgz"]}, b"", "HTTP 404"),
    ],
)
def test_a_wrong_chart_is_refused_and_nothing_stays(tmp_path, upstream, entry, archive, why):
    upstream.add("/kedacore/index.yaml", index({"keda": [entry]}))
    upstream.add("/kedacore/keda.tgz", archive)
    chart = Chart("keda", "2.17.2", f"{upstream.url}/kedacore")
    (problem,) = chart_source.pull([chart], tmp_path)
    assert problem.startswith(f"keda@2.17.2 from {upstream.url}/kedacore: ") and why in problem, problem
    assert list(tmp_path.iterdir()) == []


def oci_registry(upstream: FakeUpstream, archive: bytes, tag: str = "0.10.0") -> str:
    """registry.k8s.io's shape: the registry redirects to a backend that wants an anonymous bearer token, and the
    backend sends the blob on to storage on another host (here `localhost` beside `127.0.0.1`)."""
    digest = "sha256:" + hashlib.sha256(archive).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:" + "1" * 64},
            "layers": [{"mediaType": chart_source.HELM_LAYER, "digest": digest, "size": len(archive)}],
        }
    )
    challenge = f'Bearer realm="{upstream.url}/token",service="backend",scope="repository:lws/charts/lws:pull"'

    def authorised(reply: Reply):
        def route(headers: dict[str, str]) -> Reply:
            if headers.get("Authorization") != "Bearer anon-token":
                return Reply(b"{}", 401, {"WWW-Authenticate": challenge})
            return reply

        return route

    upstream.add(
        f"/v2/lws/charts/lws/manifests/{tag}", b"", 307, Location=f"/backend/v2/lws/charts/lws/manifests/{tag}"
    )
    upstream.routes[f"/backend/v2/lws/charts/lws/manifests/{tag}"] = authorised(Reply(manifest.encode()))
    port = upstream.url.rsplit(":", 1)[1]
    upstream.routes[f"/backend/v2/lws/charts/lws/blobs/{digest}"] = authorised(
        Reply(b"", 302, {"Location": f"http://localhost:{port}/storage/blob"})
    )
    upstream.add("/storage/blob", archive)
    upstream.add("/token", json.dumps({"token": "anon-token"}))
    return f"oci://127.0.0.1:{port}/lws/charts"


def test_pull_from_an_oci_registry(tmp_path, upstream):
    archive = chart_archive("lws", "v0.10.0")
    repo = oci_registry(upstream, archive)
    path = chart_source.pull_one(Chart("lws", "0.10.0", repo), tmp_path, plain_http=True)
    assert path == tmp_path / "lws-0.10.0" and (path / "values.yaml").is_file()
    by_path = {p.split("?")[0]: h for p, h in upstream.seen}
    token_query = next(p for p, _ in upstream.seen if p.startswith("/token?"))
    assert token_query == "/token?service=backend&scope=repository%3Alws%2Fcharts%2Flws%3Apull"
    blob = f"/backend/v2/lws/charts/lws/blobs/sha256:{hashlib.sha256(archive).hexdigest()}"
    assert by_path[blob]["Authorization"] == "Bearer anon-token"
    assert (
        "application/vnd.oci.image.manifest.v1+json" in by_path["/backend/v2/lws/charts/lws/manifests/0.10.0"]["Accept"]
    )
    # the token goes to the registry, never on to the storage host
    assert "Authorization" not in by_path["/storage/blob"]


def test_an_oci_tag_with_a_v_and_a_layer_that_does_not_match(tmp_path, upstream):
    archive = chart_archive("lws", "v0.10.0")
    repo = oci_registry(upstream, archive, tag="v0.10.0")
    assert chart_source.pull_one(Chart("lws", "0.10.0", repo), tmp_path, plain_http=True).is_dir()
    upstream.add("/storage/blob", archive + b"tampered")
    (problem,) = chart_source.pull([Chart("lws", "0.10.0", repo)], tmp_path / "again", plain_http=True)
    assert "does not match its digest sha256:" in problem
    assert not (tmp_path / "again" / "lws-0.10.0").exists()


def test_pull_command_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(chart_source.MIRROR_ENV, str(tmp_path))
    assert chart_source.main(["pull", "keda@9.9.9"]) == 2
    assert "not pinned by the project: keda@9.9.9" in capsys.readouterr().err
    assert chart_source.main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert f"keda@2.17.2\tmissing: {chart_source.COMMAND}" in listed
