"""Services and DNS of the simulated cluster (tools/simulation/net.py) and the build of their binaries
(tools/simulation/gobuild.py).

The unit tests need no root. The integration test (`test_services_and_dns_work_in_the_netns`) starts a simulated
cluster in a namespace of its own, runs the built kube-proxy and CoreDNS in it, and shows a ClusterIP answering
through kube-proxy, Service and pod names resolving through CoreDNS (LWS_LEADER_ADDRESS's form included), and the
host's netfilter rules and sysctls unchanged; it skips unless it runs as root with the engine and both binaries.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml
from conftest import unavailable

from tools.setup_tests import Capability
from tools.simulation import binaries, gobuild, net

ROOT = Path(__file__).resolve().parent.parent


# --- gobuild: the recipes ---------------------------------------------------------------------------------------


def _requires(go_mod: str) -> dict[str, str]:
    """module -> version of every `require` line (block or single) of a go.mod."""
    found = {}
    for m in re.finditer(r"^\s*(?:require\s+)?([\w.\-/]+\.[\w.\-/]+)\s+(v[^\s]+)", go_mod, re.M):
        found[m[1]] = m[2]
    return found


def _replaces(go_mod: str) -> dict[str, str]:
    return {m[1]: m[3] for m in re.finditer(r"^\s*([\w.\-/]+) => ([\w.\-/]+) (v[^\s]+)", go_mod, re.M)}


@pytest.mark.parametrize("name", sorted(gobuild.RECIPES))
def test_each_module_pins_the_release_its_recipe_names(name):
    recipe = gobuild.RECIPES[name]
    go_mod = (recipe.module_dir / "go.mod").read_text()
    assert _requires(go_mod)[recipe.upstream_module] == recipe.version
    # -mod=readonly builds only with a complete go.sum: the pinned module's own hash must be there.
    go_sum = (recipe.module_dir / "go.sum").read_text()
    assert f"{recipe.upstream_module} {recipe.version} h1:" in go_sum
    # tools.go is what keeps `go mod tidy` from dropping the binary's packages.
    assert f'"{recipe.package}"' in (recipe.module_dir / "tools.go").read_text()


def test_kube_proxy_takes_every_staging_module_from_the_same_release():
    """k8s.io/kubernetes requires its staging modules at v0.0.0: each needs a replace, to v0.<minor>.<patch>
    of the same release (a mix would build a kube-proxy unlike the release it reports)."""
    go_mod = (gobuild.RECIPES["kube-proxy"].module_dir / "go.mod").read_text()
    _, minor, patch = gobuild.KUBE_VERSION.lstrip("v").split(".")
    replaces = _replaces(go_mod)
    assert len(replaces) >= 30
    assert {v for v in replaces.values()} == {f"v0.{minor}.{patch}"}
    unreplaced = [m for m, v in _requires(go_mod).items() if v == "v0.0.0" and m not in replaces]
    assert unreplaced == []


def test_kube_proxy_reports_the_release_like_the_other_kubernetes_binaries():
    flags = gobuild.RECIPES["kube-proxy"].ldflags.split(" -X ")
    assert flags[0] == "-s -w"
    stamped = dict(f.split("=", 1) for f in flags[1:])
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert stamped[f"{pkg}.gitVersion"] == gobuild.KUBE_VERSION
        assert stamped[f"{pkg}.gitMinor"] == gobuild.KUBE_VERSION.split(".")[1]
        assert stamped[f"{pkg}.gitTreeState"] == "clean"
    cmd = gobuild.build_command(gobuild.RECIPES["kube-proxy"], Path("/out/kube-proxy"))
    # The engine builds its Kubernetes binaries with -pgo=off: the same flags share its compiled packages.
    assert cmd[:4] == ["go", "build", "-trimpath", "-pgo=off"]
    assert cmd[-3:] == ["-o", "/out/kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"]


def test_builds_use_the_installed_go_and_the_committed_go_sum():
    env = gobuild.go_env()
    assert env["GOTOOLCHAIN"] == "local"
    assert "-mod=readonly" in env["GOFLAGS"].split()
    assert env["CGO_ENABLED"] == "0"


@pytest.fixture
def recipe_copy(tmp_path, monkeypatch) -> gobuild.Recipe:
    """The CoreDNS recipe with its module folder copied under tmp_path (stamps then follow the copy)."""
    here = tmp_path / "simulation"
    shutil.copytree(gobuild.MODULES / "coredns", here / "go" / "coredns")
    monkeypatch.setattr(gobuild, "HERE", here)
    monkeypatch.setattr(gobuild, "MODULES", here / "go")
    shutil.copy(gobuild.__file__, here / "gobuild.py")
    monkeypatch.setattr(gobuild, "__file__", str(here / "gobuild.py"))
    return gobuild.RECIPES["coredns"]


def test_the_stamp_moves_with_any_file_of_the_module(recipe_copy):
    before = gobuild.stamp(recipe_copy)
    assert re.fullmatch(r"[0-9a-f]{16}", before)
    assert gobuild.stamp(recipe_copy) == before
    tools_go = recipe_copy.module_dir / "tools.go"
    tools_go.write_text(tools_go.read_text() + "\n")
    assert gobuild.stamp(recipe_copy) != before


def test_a_binary_built_by_the_same_recipe_is_not_built_again(recipe_copy, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls: list[list[str]] = []

    def fake_go(argv, cwd, env, check):
        # What the build runs: go build in the scratch copy (not the module folder), output in bin_dir.
        calls.append(list(argv))
        assert Path(cwd) != recipe_copy.module_dir and (Path(cwd) / "go.mod").is_file()
        out = Path(argv[argv.index("-o") + 1])
        assert out.parent == bin_dir
        out.write_text("#!/bin/sh\n")
        out.chmod(0o755)

    monkeypatch.setattr(gobuild.subprocess, "run", fake_go)
    assert gobuild.build(bin_dir, recipe_copy, log=lambda _: None) is not None
    assert (bin_dir / "coredns").is_file() and (bin_dir / ".built-coredns").read_text().strip()
    assert gobuild.build(bin_dir, recipe_copy, log=lambda _: None) is None
    assert len(calls) == 1
    # A change of the recipe builds again; so does a missing binary.
    (recipe_copy.module_dir / "tools.go").write_text("// changed\n")
    assert gobuild.build(bin_dir, recipe_copy, log=lambda _: None) is not None
    (bin_dir / "coredns").unlink()
    assert gobuild.build(bin_dir, recipe_copy, log=lambda _: None) is not None
    assert len(calls) == 3


def test_a_failed_build_keeps_the_old_binary_and_marker(recipe_copy, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "coredns").write_text("old")
    (bin_dir / ".built-coredns").write_text("0000000000000000\n")

    def failing_go(argv, cwd, env, check):
        Path(argv[argv.index("-o") + 1]).write_text("partial")
        raise subprocess.CalledProcessError(1, argv)

    monkeypatch.setattr(gobuild.subprocess, "run", failing_go)
    with pytest.raises(subprocess.CalledProcessError):
        gobuild.build(bin_dir, recipe_copy, log=lambda _: None)
    assert (bin_dir / "coredns").read_text() == "old"
    assert (bin_dir / ".built-coredns").read_text() == "0000000000000000\n"
    assert not (bin_dir / ".tmp-coredns").exists()


def test_the_command_line_names_binaries_and_prints_stamps(capsys):
    assert gobuild.main(["--stamp", "coredns"]) == 0
    assert capsys.readouterr().out.strip() == gobuild.stamp(gobuild.RECIPES["coredns"])
    assert gobuild.main(["--stamp"]) == 0
    both = capsys.readouterr().out.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", both) and both != gobuild.stamp(gobuild.RECIPES["coredns"])
    with pytest.raises(SystemExit, match="unknown binary kube-dns"):
        gobuild.build_all(Path("/nonexistent"), ["kube-dns"])


# --- net: the namespace --------------------------------------------------------------------------------------

LINKS_LO = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default\n"
LINKS_VETH = LINKS_LO + "7: veth0@if6: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT\n"


def test_links_and_route_devices_are_read_from_ip_output():
    assert net.parse_links(LINKS_LO) == ["lo"]
    assert net.parse_links(LINKS_VETH) == ["lo", "veth0"]
    assert net.parse_route_device("10.0.0.1 dev lo src 10.246.0.53 uid 0 \n    cache <local> \n") == "lo"
    assert net.parse_route_device("10.0.0.1 via 192.168.1.1 dev eth0 src 192.168.1.5 uid 0\n") == "eth0"
    assert net.parse_route_device("local 10.246.0.53 dev lo table local src 10.246.0.53\n") == "lo"
    assert net.parse_route_device("") is None


class FakeIp:
    """`ip -n NETNS ...` as a function: links and route answers given, commands recorded."""

    def __init__(self, links: str = LINKS_LO, route: str | None = "10.0.0.1 dev lo src 10.246.0.53 uid 0\n"):
        self.links, self.route = links, route
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        if argv[3:5] == ["link", "show"] or argv[3:6] == ["-o", "link", "show"]:
            return self.links
        if argv[3:5] == ["route", "get"]:
            if self.route is None:
                raise subprocess.CalledProcessError(2, argv, stderr="RTNETLINK answers: Network is unreachable")
            return self.route
        return ""


def test_the_service_range_is_routed_through_lo_and_checked():
    ip = FakeIp()
    net.service_route_setup("sim", run=ip)
    assert ["ip", "-n", "sim", "route", "replace", "local", "10.0.0.0/24", "dev", "lo"] in ip.calls
    # Checked after: the first address of the range goes through lo.
    assert ip.calls[-1] == ["ip", "-n", "sim", "route", "get", "10.0.0.1"]


def test_no_route_is_added_to_a_namespace_with_another_interface():
    ip = FakeIp(links=LINKS_VETH)
    with pytest.raises(net.UnsafeNetnsError, match="veth0"):
        net.service_route_setup("sim", run=ip)
    assert not [c for c in ip.calls if "replace" in c]


def test_a_route_through_any_device_but_lo_is_refused():
    with pytest.raises(net.UnsafeNetnsError, match="via eth0"):
        net.check_netns("sim", run=FakeIp(route="10.0.0.10 via 10.1.0.1 dev eth0 src 10.1.0.2\n"))
    with pytest.raises(net.UnsafeNetnsError, match="no route"):
        net.check_netns("sim", run=FakeIp(route=None))
    net.check_netns("sim", run=FakeIp())


def test_addresses_go_on_lo_as_host_routes_and_loopback_is_refused():
    ip = FakeIp()
    net.address_setup("sim", ["10.246.0.53", "10.245.0.5"], run=ip)
    assert ip.calls == [
        ["ip", "-n", "sim", "addr", "replace", "10.246.0.53/32", "dev", "lo"],
        ["ip", "-n", "sim", "addr", "replace", "10.245.0.5/32", "dev", "lo"],
    ]
    with pytest.raises(ValueError, match="loopback"):
        net.address_setup("sim", ["127.0.0.5"], run=ip)


def test_the_default_addresses_fit_the_cluster():
    services = ipaddress.ip_network(net.SERVICE_CIDR)
    pods = ipaddress.IPv4Network(net.CLUSTER_CIDR)
    assert ipaddress.ip_address(net.DNS_SERVICE_IP) in services
    # kwok's fake pods (cluster.sh --cidr 10.244.0.0/16) and the agent's (10.245.0.0/16) count as pod traffic.
    assert ipaddress.IPv4Network("10.244.0.0/16").subnet_of(pods)
    assert ipaddress.IPv4Network("10.245.0.0/16").subnet_of(pods)
    coredns = ipaddress.ip_address(net.COREDNS_ADDRESS)
    assert coredns not in pods and coredns not in services and not coredns.is_loopback


# --- net: kube-proxy --------------------------------------------------------------------------------------------


def test_kube_proxy_config_writes_no_sysctl_and_listens_inside(tmp_path):
    args = net.kube_proxy_args(tmp_path, "/run/kubeconfig", "net-node", binary="/bin/kube-proxy")
    assert args[:2] == ["/bin/kube-proxy", "--config"]
    config = yaml.safe_load(Path(args[2]).read_text())
    assert config["kind"] == "KubeProxyConfiguration"
    assert config["clientConnection"]["kubeconfig"] == "/run/kubeconfig"
    assert config["hostnameOverride"] == "net-node"
    assert config["mode"] == "nftables"
    assert config["clusterCIDR"] == net.CLUSTER_CIDR
    # kube-proxy writes a conntrack sysctl only for a value > 0 (pkg/proxy/conntrack/sysctls.go): all are 0.
    conntrack = config["conntrack"]
    assert conntrack["maxPerCore"] == 0 and conntrack["min"] == 0
    for key in ("tcpEstablishedTimeout", "tcpCloseWaitTimeout", "udpTimeout", "udpStreamTimeout"):
        assert conntrack[key] == "0s"
    assert config["iptables"]["localhostNodePorts"] is False  # else route_localnet=1
    assert config["healthzBindAddress"].startswith("127.0.0.1:")
    assert config["metricsBindAddress"].startswith("127.0.0.1:")
    with pytest.raises(ValueError, match="ipvs"):
        net.kube_proxy_config("/k", "n", mode="ipvs")


# --- net: CoreDNS -------------------------------------------------------------------------------------------------


def test_the_corefile_serves_the_cluster_and_asks_no_one_outside(tmp_path):
    path = Path(net.coredns_args(tmp_path, "/run/kubeconfig", context="sim")[2])
    text = path.read_text()
    assert "forward" not in text and "grpc" not in text  # nothing beyond the namespace is asked
    blocks = dict(re.findall(r"^(\S[^{]*)\{(.*?)^\}", text, re.M | re.S))
    cluster = blocks["cluster.local:53 in-addr.arpa:53 ip6.arpa:53 "]
    assert f"bind {net.COREDNS_ADDRESS}" in cluster
    kube = re.search(r"kubernetes cluster.local in-addr.arpa ip6.arpa \{(.*?)\}", cluster, re.S)
    assert kube is not None
    assert [line.strip() for line in kube[1].strip().splitlines()] == [
        "kubeconfig /run/kubeconfig sim",
        "pods insecure",
        "fallthrough in-addr.arpa ip6.arpa",
        "ttl 30",
    ]
    # The fallthrough lands on an empty reverse zone (NXDOMAIN), not on the end of the chain (SERVFAIL).
    zone = re.search(r"file (\S+) in-addr.arpa ip6.arpa", cluster)
    assert zone is not None and "IN SOA" in Path(zone[1]).read_text()
    # Every other name: NXDOMAIN from the catch-all block, on the same address.
    catch_all = blocks[".:53 "]
    assert f"bind {net.COREDNS_ADDRESS}" in catch_all and "rcode NXDOMAIN" in catch_all


def test_kube_dns_points_its_cluster_ip_at_coredns():
    service, slice_ = net.kube_dns_objects()
    assert service["spec"]["clusterIP"] == net.DNS_SERVICE_IP
    assert "selector" not in service["spec"]  # else the EndpointSlice controller would own (and empty) it
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == service["metadata"]["name"]
    assert slice_["metadata"]["namespace"] == service["metadata"]["namespace"] == "kube-system"
    assert slice_["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] != "endpointslice-controller.k8s.io"
    # kube-proxy pairs a Service port with an EndpointSlice port by name and protocol.
    assert (
        {(p["name"], p["protocol"]) for p in service["spec"]["ports"]}
        == {(p["name"], p["protocol"]) for p in slice_["ports"]}
        == {("dns", "UDP"), ("dns-tcp", "TCP")}
    )
    assert slice_["endpoints"] == [{"addresses": [net.COREDNS_ADDRESS], "conditions": {"ready": True}}]
    with pytest.raises(ValueError, match="loopback"):
        net.kube_dns_objects(address="127.0.0.53")


def test_a_pods_resolv_conf_searches_like_the_kubelets():
    assert net.resolv_conf("sglang-dev").splitlines() == [
        "search sglang-dev.svc.cluster.local svc.cluster.local cluster.local",
        f"nameserver {net.DNS_SERVICE_IP}",
        "options ndots:5",
    ]


# --- net: the DNS client ------------------------------------------------------------------------------------------


def _reply(query: bytes, rcode: int, answers: Sequence[tuple[int, bytes]]) -> bytes:
    """A server's reply to query: its question echoed, each answer's owner a pointer to the question's name."""
    ident = struct.unpack(">H", query[:2])[0]
    head = struct.pack(">HHHHHH", ident, 0x8180 | rcode, 1, len(answers), 0, 0)
    body = b"".join(b"\xc0\x0c" + struct.pack(">HHIH", t, 1, 30, len(d)) + d for t, d in answers)
    return head + query[12:] + body


@pytest.fixture
def dns_server() -> Iterator[tuple[int, list[bytes]]]:
    """A UDP server on 127.0.0.1 answering one A record, or NXDOMAIN for names under example.com."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    seen: list[bytes] = []

    def serve():
        for _ in range(2):
            try:
                query, peer = sock.recvfrom(512)
            except OSError:
                return
            seen.append(query)
            if b"\x07example\x03com\x00" in query:
                sock.sendto(_reply(query, 3, []), peer)
            else:
                sock.sendto(_reply(query, 0, [(1, bytes([10, 0, 0, 158]))]), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], seen
    sock.close()
    thread.join(5)


def test_dns_query_asks_one_question_and_reads_the_answer(dns_server):
    port, seen = dns_server
    reply = net.dns_query("127.0.0.1", "my-svc.default.svc.cluster.local", port=port)
    assert reply == net.DnsReply("NOERROR", [("A", "10.0.0.158")])
    assert b"\x06my-svc\x07default\x03svc\x07cluster\x05local\x00\x00\x01\x00\x01" in seen[0]
    assert net.dns_query("127.0.0.1", "example.com", port=port) == net.DnsReply("NXDOMAIN", [])


def test_dns_replies_with_compressed_names_decode():
    query = net.encode_query("1.0.0.10.in-addr.arpa", "PTR", 7)
    target = b"\x0akubernetes\x07default\x03svc\x07cluster\x05local\x00"
    srv = struct.pack(">HHH", 0, 100, 443) + b"\xc0\x0c"  # target compressed to the question's name
    reply = net.decode_reply(_reply(query, 0, [(12, target), (33, srv)]), 7)
    assert reply.answers == [("PTR", "kubernetes.default.svc.cluster.local"), ("SRV", "443 1.0.0.10.in-addr.arpa")]
    with pytest.raises(ValueError, match="id"):
        net.decode_reply(_reply(query, 0, []), 8)


# --- integration: kube-proxy and CoreDNS in the simulation's netns ------------------------------------------------

NETNS = "simnet-test"  # not the sandbox's or the e2e suite's: this test may run beside them
NODE = "net-node"  # a Node no kwok manages: what the node agent's nodes will be
NODE_IP = "10.246.0.1"
POD_IP = "10.245.0.5"  # the "pod" behind my-svc: a python http.server bound to it
LEADER_IP = "10.245.0.7"  # the LWS-style leader pod's IP (no process: DNS only)
VOLATILE_SYSCTLS = {"nf_conntrack_count"}


def host_network_state() -> dict[str, str]:
    """What kube-proxy could change on the host if it escaped its namespace: the netfilter rulesets (nft,
    iptables-nft and -legacy, ip6tables) and the conntrack/routing sysctls, read from this (the host's) netns."""
    state = {}
    for name, argv in {
        "nft": ["nft", "list", "ruleset"],
        "iptables": ["iptables-save"],
        "iptables-legacy": ["iptables-legacy-save"],
        "ip6tables": ["ip6tables-save"],
    }.items():
        if shutil.which(argv[0]):
            state[name] = subprocess.run(argv, capture_output=True, text=True).stdout
    for path in [*Path("/proc/sys/net/netfilter").glob("*"), Path("/sys/module/nf_conntrack/parameters/hashsize")]:
        if path.name not in VOLATILE_SYSCTLS and path.is_file():
            state[str(path)] = path.read_text()
    for key in ("route_localnet", "rp_filter", "forwarding"):
        state[key] = Path(f"/proc/sys/net/ipv4/conf/all/{key}").read_text()
    return state


def _connect(cluster, address: str, port: int) -> str:
    """Inside the netns: how a TCP connect to address:port ends ('connected', or the error), within 3 s."""
    code = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(3)\n"
        f"try:\n    s.connect(({address!r}, {port})); print('connected')\n"
        "except OSError as e:\n    print(type(e).__name__, e.strerror or e)\n"
    )
    return cluster.exec("python3", "-c", code).stdout.strip()


def _http_get(cluster, url: str) -> str:
    result = cluster.exec("curl", "-sS", "-m", "5", url, check=False)
    return result.stdout if result.returncode == 0 else f"curl exit {result.returncode}: {result.stderr.strip()}"


def _dns(cluster, name: str, qtype: str = "A", server: str = net.DNS_SERVICE_IP) -> net.DnsReply:
    out = cluster.exec(sys.executable, "-m", "tools.simulation.net", "dns", server, name, qtype, cwd=ROOT).stdout
    rcode, *answers = out.split()
    return net.DnsReply(rcode, [(kind, value) for kind, _, value in (a.partition("=") for a in answers)])


def _with_resolv_conf(cluster, resolv: Path, script: str) -> str:
    """script (sh) inside the netns, in a mount namespace of its own where resolv is /etc/resolv.conf: the
    host's file is never touched (unshare --mount makes the bind mount private)."""
    wrapped = f"mount --bind {resolv} /etc/resolv.conf && {script}"
    return cluster.exec("unshare", "--mount", "sh", "-c", wrapped).stdout


def test_services_and_dns_work_in_the_netns(tmp_path):
    from tools.engine import Cluster, Engine, EngineMissingError

    if os.geteuid() != 0:
        unavailable(
            Capability.SANDBOX,
            "kube-proxy and CoreDNS in the netns: needs root (ip netns, nftables); CI runs it as root",
        )
    missing_tools = [t for t in ("ip", "nft", "unshare", "curl", "getent") if not shutil.which(t)]
    if missing_tools:
        unavailable(
            Capability.SANDBOX,
            f"kube-proxy and CoreDNS in the netns: {', '.join(missing_tools)} missing (apt-get install "
            "iproute2 nftables util-linux curl)",
        )
    try:
        engine = Engine.find()
        bin_dir = binaries.bin_dir(binaries.NETWORK)
    except (EngineMissingError, binaries.FetchError) as exc:
        unavailable(Capability.SANDBOX, f"kube-proxy and CoreDNS in the netns: {exc}")

    before = host_network_state()
    run_dir = tmp_path / "run"
    cluster = Cluster(engine, run_dir, netns=NETNS)
    cluster.start("--nodes", "1")
    try:
        _prove(cluster, bin_dir, tmp_path)
    finally:
        cluster.stop()  # the test's daemons by their PIDs, then the sandbox (which deletes the netns)
    assert host_network_state() == before, "the host's netfilter rules or conntrack sysctls changed"
    assert NETNS not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _prove(cluster, bin_dir: Path, tmp_path: Path) -> None:
    kubeconfig = cluster.run_dir / "kubeconfig"

    # Without the route, a ClusterIP is unreachable before netfilter could rewrite it.
    assert _connect(cluster, "10.0.0.1", 443) == "OSError Network is unreachable"
    net.service_route_setup(NETNS)
    net.address_setup(NETNS, [net.COREDNS_ADDRESS, NODE_IP, POD_IP, LEADER_IP])
    net.check_netns(NETNS, probes=("10.0.0.1", net.DNS_SERVICE_IP, "10.0.0.254"))
    route = subprocess.run(["ip", "-n", NETNS, "route", "get", "10.0.0.1"], capture_output=True, text=True).stdout
    assert " dev lo " in route, route

    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}}
    cluster.apply([node, *net.kube_dns_objects()])
    status = {"status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}}
    cluster.kubectl("patch", "node", NODE, "--subresource=status", "--type=merge", "-p", yaml.safe_dump(status))

    net_dir = cluster.run_dir / "net"
    cluster.spawn("kube-proxy", *net.kube_proxy_args(net_dir, kubeconfig, NODE, binary=bin_dir / "kube-proxy"))
    cluster.spawn("coredns", *net.coredns_args(net_dir, kubeconfig, binary=bin_dir / "coredns"))
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("served by the pod at 10.245.0.5\n")
    cluster.spawn("http-server", "python3", "-m", "http.server", "8000", "--bind", POD_IP, "--directory", str(www))
    for what, url in (("kube-proxy", net.KUBE_PROXY_HEALTHZ + "/healthz"), ("CoreDNS", net.COREDNS_READY + "/ready")):
        cluster.wait_for(
            f"{what} ready",
            lambda u=url: cluster.exec("curl", "-sf", f"http://{u}", check=False).returncode == 0,
            timeout=60,
        )

    # A Service whose EndpointSlice names the pod's address answers at its ClusterIP, through kube-proxy's DNAT.
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "my-svc", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8000, "protocol": "TCP"}]},
    }
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "addressType": "IPv4",
        "metadata": {
            "name": "my-svc-1",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "my-svc",
                "endpointslice.kubernetes.io/managed-by": "test.sglang-platform",
            },
        },
        "endpoints": [{"addresses": [POD_IP], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
    }
    empty = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "no-endpoints", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
    }
    cluster.apply([svc, endpoints, empty])
    cluster_ip = cluster.get("service", "my-svc")["spec"]["clusterIP"]
    cluster.wait_for(
        "my-svc through its ClusterIP",
        lambda: "served by the pod" in _http_get(cluster, f"http://{cluster_ip}/"),
        timeout=30,
    )
    rules = subprocess.run(
        ["ip", "netns", "exec", NETNS, "nft", "list", "table", "ip", "kube-proxy"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{cluster_ip} . tcp . 80 : goto service-" in rules and f"{POD_IP} . 8000" in rules
    # As a NodePort, the same Service also answers at the node's address (nodePortAddresses defaults to it).
    cluster.kubectl("patch", "service", "my-svc", "--type=merge", "-p", '{"spec": {"type": "NodePort"}}')
    node_port = cluster.get("service", "my-svc")["spec"]["ports"][0]["nodePort"]
    cluster.wait_for(
        "my-svc at NODE_IP:nodePort",
        lambda: "served by the pod" in _http_get(cluster, f"http://{NODE_IP}:{node_port}/"),
        timeout=30,
    )
    # kube-proxy's REJECT for a Service without endpoints reaches the client at once (the local route).
    empty_ip = cluster.get("service", "no-endpoints")["spec"]["clusterIP"]
    cluster.wait_for(
        "no-endpoints refused",
        lambda: _connect(cluster, empty_ip, 80) == "ConnectionRefusedError Connection refused",
        timeout=30,
    )

    # CoreDNS, asked at kube-dns's ClusterIP (UDP, through kube-proxy): Services, reverse, nothing outside.
    assert _dns(cluster, "my-svc.default.svc.cluster.local") == net.DnsReply("NOERROR", [("A", cluster_ip)])
    assert _dns(cluster, "huggingface.co") == net.DnsReply("NXDOMAIN", [])
    assert _dns(cluster, "1.0.0.10.in-addr.arpa", "PTR") == net.DnsReply(
        "NOERROR", [("PTR", "kubernetes.default.svc.cluster.local")]
    )
    assert _dns(cluster, "8.8.8.8.in-addr.arpa", "PTR").rcode == "NXDOMAIN"  # not SERVFAIL: the empty zone

    # The resolver of a pod (resolv.conf as the kubelet writes it): getent, Python, and curl by name.
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(net.resolv_conf("default"))
    out = _with_resolv_conf(
        cluster,
        resolv,
        (
            "getent hosts my-svc.default.svc.cluster.local; "
            "python3 -c \"import socket; print('py', socket.getaddrinfo('my-svc.default.svc.cluster.local', 80,"
            ' proto=socket.IPPROTO_TCP)[0][4][0])"; '
            "curl -sS -m 5 http://my-svc/; getent hosts example.com || echo example.com not found"
        ),
    )
    # getent pads the address to a column (how many spaces depends on the ClusterIP's length): compare words.
    assert [" ".join(line.split()) for line in out.splitlines()] == [
        f"{cluster_ip} my-svc.default.svc.cluster.local",
        f"py {cluster_ip}",
        "served by the pod at 10.245.0.5",
        "example.com not found",
    ], out

    # LWS's leader address: a headless Service (as LWS makes it) and a pod with hostname and subdomain; the
    # EndpointSlice controller (kube-controller-manager) publishes the hostname once the pod has an IP. No kubelet
    # runs here, so the pod's status is written by hand, as the node agent will write it.
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "mylws", "namespace": "default"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app": "mylws"}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mylws-0", "namespace": "default", "labels": {"app": "mylws"}},
        "spec": {
            "hostname": "mylws-0",
            "subdomain": "mylws",
            "nodeName": NODE,
            "containers": [{"name": "leader", "image": "registry.invalid/none:0"}],
        },
    }
    cluster.apply([headless, pod])
    pod_status = {
        "status": {
            "phase": "Running",
            "podIP": LEADER_IP,
            "podIPs": [{"ip": LEADER_IP}],
            "hostIP": NODE_IP,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }
    cluster.kubectl("patch", "pod", "mylws-0", "--subresource=status", "--type=merge", "-p", yaml.safe_dump(pod_status))
    cluster.wait_for(
        "mylws's EndpointSlice with the pod's hostname",
        lambda: [
            e
            for s in cluster.get("endpointslice", "-l", "kubernetes.io/service-name=mylws")["items"]
            for e in s.get("endpoints") or []
            if e.get("hostname") == "mylws-0" and LEADER_IP in e["addresses"]
        ],
        timeout=60,
    )
    out = _with_resolv_conf(cluster, resolv, "getent hosts mylws-0.mylws.default; getent hosts mylws")
    assert [" ".join(line.split()) for line in out.splitlines()] == [
        f"{LEADER_IP} mylws-0.mylws.default.svc.cluster.local",
        f"{LEADER_IP} mylws.default.svc.cluster.local",
    ], out
