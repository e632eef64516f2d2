"""The upstream CRDs are the project's own (third_party/crds): every group the stacks create, every release a
stack can pin, each file recorded with its source and sha256, and the refresh that fetches a new pin's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, chart, stack_values
from fake_upstream import FakeUpstream

from sglang_platform.facts import bom
from tools import crds, harness, sim_stacks
from tools.k8s_schemas import validate_builtin

# The API groups of the custom resources the stacks create, which the issue names (tests below also derive
# them from the renders, so a new kind cannot slip past).
GROUPS = {"leaderworkerset.x-k8s.io", "scheduling.volcano.sh", "monitoring.coreos.com", "keda.sh"}


def tracked_groups() -> dict[str, set[str]]:
    """API group -> the tracked files under third_party/crds that define a CRD of it (what a clone gets)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "third_party/crds"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    out: dict[str, set[str]] = {}
    for name in filter(None, (n.decode() for n in listed)):
        if not name.endswith(".yaml"):
            continue
        for doc in crds.documents(ROOT / name):
            if doc.get("kind") == "CustomResourceDefinition":
                out.setdefault(doc["spec"]["group"], set()).add(Path(name).name)
    return out


def test_git_holds_the_crds_of_every_group_the_stacks_create(stack):
    name, result, _ = stack
    groups = tracked_groups()
    assert set(groups) >= GROUPS, sorted(groups)
    custom = {
        o["apiVersion"].split("/")[0]
        for o in harness.kubernetes_objects(result)
        if validate_builtin(o, "1.35.8") is None  # not a built-in kind of Kubernetes
    }
    assert custom, f"{name} creates no custom resource"
    assert custom <= set(groups), f"{name} creates {sorted(custom - set(groups))} with no CRD in git"


def project_pins() -> dict[str, dict[str, str]]:
    """Project -> release -> where the project pins it: the BOM, every stack file, the simulation's overrides."""
    out: dict[str, dict[str, str]] = {}

    def note(versions: dict, where: str) -> None:
        for project, version in crds.pinned(versions).items():
            out.setdefault(project, {}).setdefault(version, where)

    note({}, "facts/bom.py")
    for path in sorted([*ROOT.glob("Pulumi.*.yaml"), *harness.EXAMPLE_STACKS.glob("Pulumi.*.yaml")]):
        stack = path.name.split(".")[1]
        note(stack_values(stack).get("versions") or {}, str(path.relative_to(ROOT)))
    for stack in sim_stacks.E2E_STACKS:
        for key, value, _ in sim_stacks.applicable(stack_values(stack)):
            if key.startswith("versions."):
                versions = {**(stack_values(stack).get("versions") or {}), key.split(".", 1)[1]: value}
                note(versions, "tools/sim_stacks.py")
    return out


def test_every_release_a_stack_can_pin_has_its_crds():
    for project, versions in crds.SUPPORTED.items():
        for version in versions:
            paths = crds.files_for(project, version)
            # the files are what their names say: the release's CRDs, one per file
            for path in paths:
                (doc,) = crds.documents(path)
                _, _, crd = crds.identify(path.name)
                assert (doc["spec"]["group"], doc["spec"]["names"]["plural"]) == (crd.group, crd.plural), path.name
    pins = project_pins()
    assert set(pins) == set(crds.PROJECTS)
    for project, versions in pins.items():
        unsupported = {v: where for v, where in versions.items() if v not in crds.SUPPORTED[project]}
        assert unsupported == {}, f"{project}: pinned without CRDs in tools/crds.py SUPPORTED (refresh them)"


def test_a_pin_without_its_files_names_the_refresh(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        crds.files_for("volcano", "v1.16.0", tmp_path)
    assert str(info.value) == (
        f"{tmp_path} has no volcano-v1.16.0-queues.yaml, volcano-v1.16.0-podgroups.yaml (Volcano 1.16.0): run "
        "`python tools/crds.py refresh volcano 1.16.0` and commit what it writes"
    )
    # LWS's DisaggregatedSet CRDs belong to the releases that have them (v0.9.0 on; the role scaler v0.10.0 on).
    assert [f.plural for f in crds.PROJECTS["lws"].files_of("0.7.0")] == ["leaderworkersets"]
    assert len(crds.PROJECTS["lws"].files_of("0.9.0")) == 2 and len(crds.PROJECTS["lws"].files_of("0.10.0")) == 3


def test_kube_prometheus_stack_pins_its_operator_through_the_chart():
    assert crds.pinned({"kubePrometheusStack": "88.5.3"})["prom"] == "0.93.1"
    defaults = crds.pinned(None)
    assert defaults["prom"] == crds.KUBE_PROMETHEUS_STACK_OPERATOR[bom.KUBE_PROMETHEUS_STACK_CHART]
    assert (defaults["lws"], defaults["keda"]) == (bom.LWS_CHART, bom.KEDA_CHART)
    with pytest.raises(KeyError, match=r"kube-prometheus-stack 99\.0\.0: its prometheus-operator release"):
        crds.pinned({"kubePrometheusStack": "99.0.0"})


def test_the_readme_records_every_file_with_its_sha256(tmp_path):
    assert crds.check() == []
    # and the check is not blind: a changed byte, a file without a row, a row without a file
    copy = tmp_path / "crds"
    shutil.copytree(crds.CRDS, copy)
    with (copy / "keda-v2.17.2-scaledobjects.yaml").open("a") as f:
        f.write("\n")
    (copy / "keda-v2.16.1-scaledobjects.yaml").write_text("")
    (copy / "lws-v0.5.1.yaml").unlink()
    problems = crds.check(copy)
    assert [p.split(":")[0] for p in problems] == [
        "keda-v2.16.1-scaledobjects.yaml",
        "keda-v2.17.2-scaledobjects.yaml",
        "lws-v0.5.1.yaml",
    ], problems


# --- refresh, against a server on 127.0.0.1 ---------------------------------------------------------------


def crd_dir(tmp_path: Path) -> Path:
    """A copy of third_party/crds' README (its table) with no CRD files."""
    out = tmp_path / "crds"
    out.mkdir()
    shutil.copy(crds.README, out / "README.md")
    return out


def lws_release(upstream: FakeUpstream, version: str) -> dict[str, bytes]:
    """Serve LWS ``version``'s CRDs as the repository at its tag would (v0.10.0's content, renamed nothing)."""
    served = {}
    for crd in crds.PROJECTS["lws"].files_of(version):
        body = (crds.CRDS / crds.PROJECTS["lws"].file_name(crd, "0.10.0")).read_bytes()
        upstream.add(f"/raw/kubernetes-sigs/lws/v{version}/{crd.path}", body)
        served[crds.PROJECTS["lws"].file_name(crd, version)] = body
    return served


def test_refresh_writes_a_new_release_and_its_rows(tmp_path, upstream):
    out = crd_dir(tmp_path)
    served = lws_release(upstream, "0.11.0")
    upstream.add("/api/repos/kubernetes-sigs/lws/commits/v0.11.0", "c" * 40)
    written = crds.refresh("lws", "v0.11.0", out, f"{upstream.url}/raw", f"{upstream.url}/api")
    assert {p.name: p.read_bytes() for p in written} == served
    rows = {r.file: r for r in crds.parse_table((out / "README.md").read_text())}
    new = rows["lws-v0.11.0-disaggregatedsets.yaml"]
    assert (new.version, new.commit, new.sha256) == ("0.11.0", "c" * 40, crds.sha256(out / new.file))
    assert (
        "[kubernetes-sigs/lws `config/crd/bases/disaggregatedset.x-k8s.io_disaggregatedsets.yaml`](https://raw."
        "githubusercontent.com/kubernetes-sigs/lws/v0.11.0/config/crd/bases/disaggregatedset.x-k8s.io_"
        "disaggregatedsets.yaml)" in (out / "README.md").read_text()
    )
    # the rows of the other releases are kept as they were
    assert set(rows) == {r.file for r in crds.parse_table(crds.README.read_text())} | set(served)
    # the GitHub API was asked for the tag's commit as plain text
    (api,) = [h for p, h in upstream.seen if p.startswith("/api/")]
    assert api["Accept"] == "application/vnd.github.sha"
    # the table is exactly as check() wants it once the other releases' files are there too
    for path in crds.CRDS.glob("*.yaml"):
        shutil.copy(path, out)
    assert crds.check(out) == []


def test_refresh_without_the_api_records_no_commit(tmp_path, upstream):
    out = crd_dir(tmp_path)
    upstream.add(
        "/raw/kedacore/keda/v2.21.0/config/crd/bases/keda.sh_scaledobjects.yaml",
        (crds.CRDS / "keda-v2.20.2-scaledobjects.yaml").read_bytes(),
    )
    crds.refresh("keda", "2.21.0", out, f"{upstream.url}/raw", f"{upstream.url}/api")
    (row,) = [r for r in crds.parse_table((out / "README.md").read_text()) if r.version == "2.21.0"]
    assert row.commit == crds.NO_COMMIT


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        ("<html>Not Found</html>", 200, "not a single CustomResourceDefinition"),
        ("404: Not Found", 404, "HTTP Error 404"),
        ("kind: CustomResourceDefinition\nspec:\n  group: keda.sh\n  names: {plural: scaledjobs}\n", 200, "defines"),
        ("a: [", 200, "not YAML"),
    ],
)
def test_refresh_refuses_what_is_not_the_crd_and_writes_nothing(tmp_path, upstream, body, status, why):
    out = crd_dir(tmp_path)
    before = (out / "README.md").read_text()
    served = lws_release(upstream, "0.11.0")
    # the last file of the release is the bad one: the good ones before it must not be written either
    bad = crds.PROJECTS["lws"].files[-1].path
    upstream.add(f"/raw/kubernetes-sigs/lws/v0.11.0/{bad}", body, status)
    with pytest.raises(RuntimeError, match=why):
        crds.refresh("lws", "0.11.0", out, f"{upstream.url}/raw", f"{upstream.url}/api")
    assert sorted(p.name for p in out.iterdir()) == ["README.md"], served
    assert (out / "README.md").read_text() == before


def test_refresh_command_line(tmp_path, upstream, capsys):
    out = crd_dir(tmp_path)
    lws_release(upstream, "0.11.0")
    argv = ["refresh", "leaderworkerset", "0.11.0", "--dir", str(out), "--raw-url", f"{upstream.url}/raw"]
    assert crds.main([*argv, "--api-url", f"{upstream.url}/api"]) == 0
    assert "wrote " in capsys.readouterr().out
    assert crds.main(["refresh", "flux", "1.0.0", "--dir", str(out)]) == 1
    assert "unknown project 'flux'" in capsys.readouterr().err


def _body(text: str) -> str:
    """A CRD file without what copies of it add or drop in front: a `# <source URL>` line, blank lines, `---`."""
    lines = text.splitlines(keepends=True)
    while lines and (not lines[0].strip() or lines[0].startswith("#") or lines[0].strip() == "---"):
        lines.pop(0)
    return "".join(lines)


@pytest.mark.parametrize("chart_version", sorted(crds.KUBE_PROMETHEUS_STACK_OPERATOR))
def test_the_operator_crds_are_the_ones_the_chart_ships(chart_version):
    """kube-prometheus-stack's crds subchart carries its operator's CRDs: its appVersion is the release the table
    maps it to, and its copies are ours byte for byte past their first line (which names the upstream URL)."""
    directory = chart("kube-prometheus-stack", chart_version)
    operator = crds.KUBE_PROMETHEUS_STACK_OPERATOR[chart_version]
    assert yaml.safe_load((directory / "Chart.yaml").read_text())["appVersion"] == f"v{operator}"
    for path in crds.files_for("prom", operator):
        plural = crds.identify(path.name)[2].plural
        shipped = (directory / "charts" / "crds" / "crds" / f"crd-{plural}.yaml").read_text()
        assert shipped.splitlines()[0] == f"# {crds.PROJECTS['prom'].raw_url(crds.identify(path.name)[2], operator)}"
        assert _body(shipped) == _body(path.read_text()), path.name


@pytest.mark.parametrize("version", sorted(crds.SUPPORTED["volcano"]))
def test_the_volcano_crds_are_the_ones_its_chart_ships(version):
    directory = chart("volcano", version)
    for path in crds.files_for("volcano", version):
        plural = crds.identify(path.name)[2].plural
        shipped = directory / "crd" / "bases" / f"scheduling.volcano.sh_{plural}.yaml"
        assert _body(shipped.read_text()) == _body(path.read_text()), path.name
