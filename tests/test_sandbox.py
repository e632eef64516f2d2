"""The sandbox's own parts: the pinned binaries (fetched, verified, cached: here from a local server standing in for
the release sites) and the checks that keep its network namespace loopback-only."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import unavailable

from tools.setup_tests import Capability
from tools.simulation import binaries, cluster
from tools.simulation.binaries import FetchError, Pin


@pytest.fixture
def release_site(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """A local HTTP server on 127.0.0.1 that serves ``tmp_path/site`` as if it were every release host (the
    download mirror setting points there), and an empty cache."""
    site = tmp_path / "site"
    site.mkdir()
    handler = partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(binaries.MIRROR_ENV, f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("SGLANG_PLATFORM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ENGINE_BIN", raising=False)
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _publish(site: Path, url: str, data: bytes) -> None:
    """Put ``data`` where the mirror maps ``url``: <site>/<host>/<path>."""
    path = site / url.split("://", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _tarball(member: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


BINARY = b"#!/bin/sh\necho 'etcd Version: 3.6.8'\n"


def test_a_good_download_is_verified_against_upstreams_checksum_file_and_cached(release_site: Path):
    pin = binaries.BY_NAME["etcd"]
    archive = _tarball(pin.member or "", BINARY)
    _publish(release_site, pin.url or "", archive)
    digest = hashlib.sha256(archive).hexdigest()
    sums = f"{'0' * 64}  etcd-v3.6.8-darwin-arm64.zip\n{digest}  etcd-v3.6.8-linux-amd64.tar.gz\n"
    _publish(release_site, pin.sha256_url or "", sums.encode())

    path = binaries.fetch(pin)

    assert path == binaries.cache_root() / "etcd-v3.6.8" / "etcd"
    assert path.read_bytes() == BINARY
    assert os.access(path, os.X_OK)
    assert binaries.locate("etcd") == path
    assert binaries.check(["etcd"]) == []
    # Cached: a second fetch downloads nothing (the site is gone).
    shutil.rmtree(release_site / "github.com")
    assert binaries.fetch(pin) == path


def test_the_yaml_language_host_comes_from_pulumi_yamls_release_checked_by_its_checksum_file(release_site: Path):
    """pulumi-yaml names its archive by tag and its checksum file by version (its .goreleaser.yml)."""
    pin = binaries.BY_NAME["pulumi-language-yaml"]
    host = b"#!/bin/sh\nexit 0\n"
    archive = _tarball("pulumi-language-yaml", host)
    _publish(release_site, pin.url or "", archive)
    sums = f"{hashlib.sha256(archive).hexdigest()}  pulumi-language-yaml-v1.38.1-linux-amd64.tar.gz\n"
    _publish(
        release_site,
        "https://github.com/pulumi/pulumi-yaml/releases/download/v1.38.1/pulumi-yaml-1.38.1-checksums.txt",
        sums.encode(),
    )

    assert binaries.fetch(pin).read_bytes() == host
    assert binaries.LANGS == ("pulumi-language-nodejs", "pulumi-language-go", "pulumi-language-yaml")


@pytest.mark.parametrize(("answer", "problems"), [("v3.260.0", 0), ("v3.276.0", 1)])
def test_a_language_host_of_another_release_is_a_problem(tmp_path: Path, monkeypatch, answer: str, problems: int):
    """The Node.js host answers -version; the pin is the release the consumers' tests ran with."""
    host = tmp_path / "pulumi-language-nodejs"
    host.write_text(f'#!/bin/sh\n[ "$1" = -version ] && echo {answer}\n')
    host.chmod(0o755)
    monkeypatch.setenv("ENGINE_BIN", str(tmp_path))
    assert len(binaries.check(["pulumi-language-nodejs"])) == problems


def test_a_wrong_checksum_is_refused_and_nothing_is_cached(release_site: Path):
    pin = binaries.BY_NAME["kube-apiserver"]
    _publish(release_site, pin.url or "", b"not the real kube-apiserver")
    _publish(release_site, pin.sha256_url or "", hashlib.sha256(b"the real one").hexdigest().encode() + b"\n")

    with pytest.raises(FetchError) as caught:
        binaries.fetch(pin)

    got, want = hashlib.sha256(b"not the real kube-apiserver").hexdigest(), hashlib.sha256(b"the real one").hexdigest()
    assert str(caught.value) == (
        f"kube-apiserver v1.36.3: sha256 of {os.environ[binaries.MIRROR_ENV]}/dl.k8s.io/release/v1.36.3/bin/linux/"
        f"amd64/kube-apiserver is {got}, expected {want}: refused, nothing cached"
    )
    assert binaries.locate("kube-apiserver") is None
    assert not (binaries.cache_root() / "kube-apiserver-v1.36.3").exists() or not any(
        (binaries.cache_root() / "kube-apiserver-v1.36.3").iterdir()
    )


def test_a_pinned_sha256_wins_over_the_checksum_file(release_site: Path):
    content = b"binary"
    pin = Pin("tool", "v1", "cluster", url="https://example.invalid/tool", sha256=hashlib.sha256(b"other").hexdigest())
    _publish(release_site, pin.url or "", content)
    with pytest.raises(FetchError, match="expected"):
        binaries.fetch(pin)
    ok = Pin("tool", "v1", "cluster", url="https://example.invalid/tool", sha256=hashlib.sha256(content).hexdigest())
    assert binaries.fetch(ok).read_bytes() == content


def test_a_download_without_any_checksum_is_refused(release_site: Path):
    pin = Pin("tool", "v2", "cluster", url="https://example.invalid/tool2")
    _publish(release_site, pin.url or "", b"x")
    with pytest.raises(FetchError, match="no pinned sha256 and no checksum file: refusing an unchecked download"):
        binaries.fetch(pin)


def test_checksum_listing_formats():
    digest = "a" * 64
    assert binaries.checksum_from_listing(f"{digest}\n", "kubectl", "x") == digest
    assert binaries.checksum_from_listing(f"{'b' * 64}  other\n{digest} *dir/kubectl\n", "kubectl", "x") == digest
    with pytest.raises(FetchError, match="x lists no sha256 for kubectl"):
        binaries.checksum_from_listing(f"{'b' * 64}  other\n{digest}  more\n", "kubectl", "x")


def test_engine_bin_directories_come_first(tmp_path: Path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
    (b / "kwok").write_text("#!/bin/sh\n")
    (b / "kwok").chmod(0o755)
    (a / "etcd").write_text("#!/bin/sh\n")
    (a / "etcd").chmod(0o755)
    monkeypatch.setenv("ENGINE_BIN", f"{a}:{b}")
    monkeypatch.setenv("SGLANG_PLATFORM_CACHE", str(tmp_path / "cache"))
    assert binaries.locate("kwok") == (b / "kwok").resolve()
    assert binaries.locate("etcd") == (a / "etcd").resolve()
    linked = binaries.bin_dir(["etcd", "kwok"])
    assert sorted(p.name for p in linked.iterdir()) == ["etcd", "kwok"]
    assert (linked / "kwok").resolve() == (b / "kwok").resolve()
    with pytest.raises(FetchError, match=r"sandbox binaries missing: kubectl\. Run `python tools/sandbox\.py binaries"):
        binaries.bin_dir(["etcd", "kubectl"])


def test_every_pin_says_how_a_user_obtains_it():
    for pin in binaries.PINS:
        assert pin.version.startswith("v"), pin
        assert "latest" not in (pin.url or "") and pin.version not in ("main", "master"), pin
        if pin.url:
            assert pin.url.startswith("https://") and (pin.sha256 or (pin.sha256_url or "").startswith("https://"))
        else:
            assert pin.go_module and pin.go_package, pin
    # Every daemon but the node agent (the project's own Python) is a pinned binary.
    assert set(binaries.CLUSTER + binaries.NETWORK) >= set(cluster.COMPONENTS) - {"node-agent"} | {"kubectl"}


# --- the namespace check, on `ip -j` output ------------------------------------------------------------------

LO = {"ifname": "lo"}
LOCAL_ROUTES = [
    {"type": "local", "dst": "127.0.0.0/8", "dev": "lo", "table": "local"},
    {"type": "local", "dst": "::1", "dev": "lo", "table": "local"},
]


def test_a_loopback_only_namespace_passes():
    assert cluster.netns_problems([LO], LOCAL_ROUTES) == []
    # The Service range routed through lo, for kube-proxy, is allowed.
    assert cluster.netns_problems([LO], [*LOCAL_ROUTES, {"dst": "10.0.0.0/24", "dev": "lo"}]) == []


def test_any_other_interface_or_route_is_refused():
    problems = cluster.netns_problems(
        [LO, {"ifname": "veth0"}],
        [*LOCAL_ROUTES, {"dst": "default", "gateway": "10.1.0.1", "dev": "veth0"}, {"dst": "10.2.0.0/16"}],
    )
    assert problems == [
        "interfaces besides lo (veth0): traffic could leave the machine",
        "route default goes through veth0, not lo",
        'route 10.2.0.0/16 names no device ({"dst": "10.2.0.0/16"})',
    ]


def test_a_serving_start_names_a_missing_host_program_before_it_starts_anything(tmp_path):
    """kube-proxy runs nft from this machine: without it `start --serve` stopped 12 s in, the cause at the end of
    kube-proxy's log. It is refused first, saying what to install; a start without --serve does not need it."""
    serve = cluster.Options.parse(["--sim", "--serve"])
    assert cluster.missing_host_tools(serve, which=lambda tool: None) == [
        "nft is not installed (apt-get install nftables): kube-proxy's nftables mode, which routes the Services "
        "(sandbox-network.md)"
    ]
    assert cluster.missing_host_tools(serve, which=lambda tool: f"/usr/sbin/{tool}") == []
    assert cluster.missing_host_tools(cluster.Options.parse(["--sim"]), which=lambda tool: None) == []
    sandbox = cluster.Sandbox(tmp_path / "run", "sbx-unit-never-made")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cluster.shutil, "which", lambda tool: None)
        with pytest.raises(cluster.SandboxError, match=r"^nft is not installed \(apt-get install nftables\)"):
            sandbox.start(serve)
    assert not (tmp_path / "run").exists()


def test_start_options_are_the_ones_the_e2e_tables_use():
    opts = cluster.Options.parse(
        [
            "--sim",
            "--fresh",
            "--nodes",
            "3",
            "--node-labels",
            "a=1,b=2",
            "--node-taints",
            "g=x:NoSchedule",
            "--pvs",
            "0",
        ]
    )
    assert (opts.nodes, opts.node_labels, opts.node_taints, opts.pvs, opts.fresh) == (
        3,
        {"a": "1", "b": "2"},
        ["g=x:NoSchedule"],
        0,
        True,
    )
    nodes = cluster.gpu_nodes(opts)
    assert [n["metadata"]["name"] for n in nodes] == ["gpu-node-0", "gpu-node-1", "gpu-node-2"]
    assert nodes[0]["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert nodes[0]["metadata"]["labels"]["a"] == "1"
    assert nodes[0]["spec"]["taints"] == [{"key": "g", "value": "x", "effect": "NoSchedule"}]
    assert nodes[0]["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    with pytest.raises(cluster.SandboxError, match="start: unknown option --gpu"):
        cluster.Options.parse(["--gpu", "8"])
    with pytest.raises(cluster.SandboxError, match="is not key"):
        cluster.gpu_nodes(cluster.Options.parse(["--node-taints", "g=x:Sometimes"]))


# --- the real thing (root and iproute2) ------------------------------------------------------------------------


@pytest.fixture
def root_with_ip() -> None:
    if os.geteuid() != 0:
        unavailable(Capability.SANDBOX, "the sandbox's network namespace needs root (CI runs as root)")
    if not shutil.which("ip"):
        unavailable(Capability.SANDBOX, "iproute2 (`ip`) is not installed: `apt-get install iproute2`")


def test_exec_refuses_a_namespace_with_another_interface(root_with_ip, tmp_path: Path):
    """A namespace that gained a second interface is refused before anything runs in it."""
    sandbox = cluster.Sandbox(tmp_path / "run", f"sbx-{uuid.uuid4().hex[:8]}")
    subprocess.run(["ip", "netns", "add", sandbox.netns], check=True)
    try:
        subprocess.run(["ip", "-n", sandbox.netns, "link", "set", "lo", "up"], check=True)
        sandbox.check_netns()
        assert sandbox.in_netns(["true"])[:4] == ["ip", "netns", "exec", sandbox.netns]
        # A veth pair with both ends inside the test's own namespace: connected to nothing (this kernel has no
        # dummy interfaces).
        subprocess.run(
            ["ip", "-n", sandbox.netns, "link", "add", "sbx0", "type", "veth", "peer", "name", "sbx1"], check=True
        )
        with pytest.raises(cluster.SafetyError, match="interfaces besides lo \\(sbx0, sbx1\\)"):
            sandbox.in_netns(["true"])
    finally:
        subprocess.run(["ip", "netns", "delete", sandbox.netns], check=False)


def test_a_failed_start_leaves_no_namespace(root_with_ip, tmp_path: Path, monkeypatch):
    """etcd that cannot start (a binary that exits at once) makes start fail; the namespace it made is gone."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("etcd", "kube-apiserver", "kubectl", "kube-controller-manager"):
        (fake / name).write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
        (fake / name).chmod(0o755)
    monkeypatch.setenv("ENGINE_BIN", str(fake))
    monkeypatch.setenv("SGLANG_PLATFORM_CACHE", str(tmp_path / "cache"))
    sandbox = cluster.Sandbox(tmp_path / "run", f"sbx-{uuid.uuid4().hex[:8]}")
    with pytest.raises(cluster.SandboxError, match="etcd did not start inside"):
        sandbox.start(cluster.Options(sim=False, controllers=False))
    assert not sandbox.netns_exists()
    assert "cannot start" in sandbox.tail("etcd")


def test_rendered_config_files_parse():
    assert yaml.safe_load(yaml.safe_dump(cluster.scheduler_config(Path("/k"))))["profiles"] == [
        {"schedulerName": "default-scheduler"},
        {"schedulerName": "volcano"},
    ]
    hooks = cluster.lws_webhooks("Q0E=")
    assert [h["name"] for doc in hooks for h in doc["webhooks"]] == [
        "mleaderworkerset.kb.io",
        "mpod.kb.io",
        "vleaderworkerset.kb.io",
        "vpod.kb.io",
    ]
    assert all(
        h["clientConfig"]["url"].startswith(f"https://127.0.0.1:{cluster.LWS_WEBHOOK_PORT}/")
        for doc in hooks
        for h in doc["webhooks"]
    )


def test_the_docs_show_the_pinned_list():
    from conftest import ROOT

    text = (ROOT / "docs" / "sandbox.md").read_text()
    assert text[text.index(binaries.BEGIN) : text.index(binaries.END) + len(binaries.END)] == binaries.table()
