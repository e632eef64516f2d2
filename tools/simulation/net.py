"""Services and DNS of the simulated cluster: kube-proxy and CoreDNS inside its loopback-only network namespace.

What the sandbox's starter calls, in this order (docs/sandbox-network.md says why each step is there):

1. ``service_route_setup(netns)``: the Service range routed through ``lo`` (and nothing else), checked.
2. ``address_setup(netns, [COREDNS_ADDRESS, pod IPs...])``: each address a process listens on, as a /32 on ``lo``.
3. ``kube_dns_objects()`` applied to the API server: the ``kube-dns`` Service at ``DNS_SERVICE_IP`` and an
   EndpointSlice naming CoreDNS's address (no kubelet runs CoreDNS as a pod, so nothing else would).
4. kube-proxy: ``kube_proxy_args(run_dir, kubeconfig, node_name)`` (writes its config file), run inside the netns;
   ready when ``KUBE_PROXY_HEALTHZ`` answers 200.
5. CoreDNS: ``coredns_args(run_dir, kubeconfig)`` (writes the Corefile), run inside the netns; ready when
   ``COREDNS_READY`` answers 200. Pods then get ``resolv_conf()`` at /etc/resolv.conf.

Nothing here starts a process; the starter runs these argument lists through its netns runner and stops them by
PID. ``python -m tools.simulation.net dns SERVER NAME [TYPE]`` asks a DNS server one question (no dig needed).
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The API server's --service-cluster-ip-range: the range kube-proxy programs and the starter routes through lo.
SERVICE_CIDR = "10.0.0.0/24"
# kube-dns's ClusterIP, in the Service range (kubeadm's choice of .10; any free address of the range works).
DNS_SERVICE_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
# kube-proxy's clusterCIDR: traffic from inside it is pod traffic (not masqueraded). kwok's fake pods take
# 10.244.0.0/16; the node agent's pods, whose addresses are on lo, are expected in 10.245.0.0/16: both inside.
CLUSTER_CIDR = "10.244.0.0/15"
# CoreDNS's own address on lo: outside both pod ranges, so no pod is ever given it. Not 127.0.0.0/8: the API
# server refuses loopback addresses in Endpoints and EndpointSlices.
COREDNS_ADDRESS = "10.246.0.53"
# Health endpoints, on 127.0.0.1 of the netns. Every pod shares this netns, so ports are chosen away from what
# workloads listen on (8080, 8181 are common): a pod binding 0.0.0.0:PORT would collide with them.
COREDNS_READY = "127.0.0.1:18181"
KUBE_PROXY_HEALTHZ = "127.0.0.1:10256"
KUBE_PROXY_METRICS = "127.0.0.1:10249"
# nftables: see docs/sandbox-network.md for why not iptables.
PROXY_MODE = "nftables"


class UnsafeNetnsError(Exception):
    """The namespace could let traffic leave the machine: another interface, or a route through a device not lo."""


# --- the namespace: the Service range through lo, and addresses on lo ---------------------------------------

Runner = Callable[[Sequence[str]], str]


def _run(argv: Sequence[str]) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout


def parse_links(ip_o_link: str) -> list[str]:
    """Interface names of `ip -o link show` output (``1: lo: <LOOPBACK,...>``; ``eth0@if5`` is ``eth0``)."""
    names = []
    for line in ip_o_link.splitlines():
        parts = line.split(": ", 2)
        if len(parts) >= 2:
            names.append(parts[1].split("@", 1)[0].strip())
    return names


def parse_route_device(ip_route_get: str) -> str | None:
    """The device of `ip route get ADDR` output (``10.0.0.1 dev lo src ...``), None when it names none."""
    words = ip_route_get.split()
    for i, word in enumerate(words[:-1]):
        if word == "dev":
            return words[i + 1]
    return None


def check_netns(netns: str, probes: Sequence[str] = (DNS_SERVICE_IP,), run: Runner = _run) -> None:
    """Refuses (UnsafeNetnsError) unless the namespace has only lo and each probe address routes through lo."""
    links = parse_links(run(["ip", "-n", netns, "-o", "link", "show"]))
    if links != ["lo"]:
        raise UnsafeNetnsError(f"netns {netns} has interfaces besides lo: {links}")
    for probe in probes:
        try:
            out = run(["ip", "-n", netns, "route", "get", probe])
        except subprocess.CalledProcessError as exc:  # "Network is unreachable": nothing routes it, safe
            raise UnsafeNetnsError(
                f"netns {netns}: no route to {probe} ({exc.stderr or exc}); expected dev lo"
            ) from exc
        dev = parse_route_device(out)
        if dev != "lo":
            raise UnsafeNetnsError(f"netns {netns} routes {probe} via {dev}, not lo: {out.strip()}")


def service_route_setup(netns: str, service_cidr: str = SERVICE_CIDR, run: Runner = _run) -> None:
    """Routes the Service range through lo as local addresses, then checks the namespace.

    Without a route, a connect() to a ClusterIP fails with "Network is unreachable" before netfilter's OUTPUT
    hook, where kube-proxy's DNAT would rewrite it. Both a plain route (``dev lo``) and a ``local`` one carry the
    DNAT'd connections; only with ``local`` does kube-proxy's REJECT (a Service without endpoints, a port the
    Service lacks) reach the client as "Connection refused" at once, as in a cluster: with a plain route the
    reject is lost and the client waits for its connect timeout (minutes for TCP). That a listener on 0.0.0.0
    would also answer at a local ClusterIP does not happen while kube-proxy runs: its filter rules reject or drop
    every connection to the range that no Service port matches, before delivery. lo is the only device, so no
    packet to the range can leave."""
    ipaddress.ip_network(service_cidr)  # refuse a typo before handing it to ip
    check_netns(netns, probes=(), run=run)  # first: never add a route to a namespace that has a way out
    run(["ip", "-n", netns, "route", "replace", "local", service_cidr, "dev", "lo"])
    first = str(next(ipaddress.ip_network(service_cidr).hosts()))
    check_netns(netns, probes=(first,), run=run)


def address_setup(netns: str, addresses: Sequence[str], run: Runner = _run) -> None:
    """Adds each address to lo as a /32 (idempotent): the addresses processes of the netns listen on."""
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if ip.is_loopback:
            raise ValueError(f"{address}: the API server refuses loopback addresses in EndpointSlices")
        run(["ip", "-n", netns, "addr", "replace", f"{ip}/{ip.max_prefixlen}", "dev", "lo"])


# --- kube-proxy ------------------------------------------------------------------------------------------------


def kube_proxy_config(
    kubeconfig: str | Path,
    node_name: str,
    *,
    mode: str = PROXY_MODE,
    cluster_cidr: str = CLUSTER_CIDR,
    healthz: str = KUBE_PROXY_HEALTHZ,
    metrics: str = KUBE_PROXY_METRICS,
) -> dict[str, Any]:
    """The KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) for one kube-proxy in the netns.

    Every setting that would write a sysctl is turned off: the namespace's defaults serve a simulation, and a
    setting such as nf_conntrack_max (or the conntrack hashsize in /sys/module) is not per-namespace, so writing
    it would change the host."""
    if mode not in ("nftables", "iptables"):
        raise ValueError(f"proxy mode {mode!r}: nftables or iptables (ipvs needs ipset and kernel modules)")
    ipaddress.ip_network(cluster_cidr)
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        # kube-proxy filters endpoints by this node for traffic policy Local and reads its Node's addresses.
        "hostnameOverride": node_name,
        "mode": mode,
        "clusterCIDR": cluster_cidr,
        "detectLocalMode": "ClusterCIDR",
        # Both listen inside the netns; the defaults (0.0.0.0:10256) would take the port on every pod address.
        "healthzBindAddress": healthz,
        "metricsBindAddress": metrics,
        "conntrack": {
            # 0: leave nf_conntrack_max alone (it and the hashsize are host-wide, not per namespace).
            "maxPerCore": 0,
            "min": 0,
            # 0s: leave the timeouts as the namespace has them (the defaults would write 24h and 1h).
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
            "udpTimeout": "0s",
            "udpStreamTimeout": "0s",
        },
        # iptables mode would set route_localnet=1 for NodePorts on 127.0.0.1; nothing here uses them.
        "iptables": {"localhostNodePorts": False},
        # A kube-proxy is not a workload the OOM killer should spare over the processes it serves (default -999).
        "oomScoreAdj": 0,
    }


def write_kube_proxy_config(run_dir: str | Path, kubeconfig: str | Path, node_name: str, **settings: Any) -> Path:
    path = Path(run_dir) / "kube-proxy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kube_proxy_config(kubeconfig, node_name, **settings), sort_keys=False))
    return path


def kube_proxy_args(
    run_dir: str | Path,
    kubeconfig: str | Path,
    node_name: str,
    *,
    binary: str | Path = "kube-proxy",
    verbosity: int = 1,
    **settings: Any,
) -> list[str]:
    """kube-proxy's command line; writes the config file it names (run_dir/kube-proxy.yaml)."""
    config = write_kube_proxy_config(run_dir, kubeconfig, node_name, **settings)
    return [str(binary), "--config", str(config), f"--v={verbosity}"]


# --- CoreDNS -------------------------------------------------------------------------------------------------

# The reverse zones' answer for addresses that are not the cluster's: the kubernetes plugin falls through for
# them (as in kubeadm's Corefile), and this empty zone answers NXDOMAIN with its SOA. Without it the fallthrough
# would reach the end of the chain: SERVFAIL, which resolvers retry.
EMPTY_REVERSE_ZONE = "@ 30 IN SOA ns.dns.{domain}. hostmaster.{domain}. 1 7200 1800 86400 30\n"


def corefile(
    kubeconfig: str | Path,
    empty_zone: str | Path,
    *,
    context: str | None = None,
    address: str = COREDNS_ADDRESS,
    domain: str = CLUSTER_DOMAIN,
    ready: str = COREDNS_READY,
    ttl: int = 30,
) -> str:
    """The Corefile: the cluster's zone and reverse zones from the API server, NXDOMAIN for every other name.

    There is no `forward`: nothing outside the netns may be asked. A name outside the cluster gets NXDOMAIN at
    once (a `template` in the catch-all block), which a resolver takes as final; REFUSED or SERVFAIL would make it
    try again. The server binds CoreDNS's own address only, so a pod may listen on port 53 of its own."""
    ipaddress.ip_address(address)
    kube_context = f" {context}" if context else ""
    return f"""\
{domain}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {address}
    errors
    ready {ready}
    kubernetes {domain} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}{kube_context}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl {ttl}
    }}
    file {empty_zone} in-addr.arpa ip6.arpa
}}
.:53 {{
    bind {address}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def write_coredns_config(run_dir: str | Path, kubeconfig: str | Path, **settings: Any) -> Path:
    """Writes run_dir/Corefile and the empty reverse zone it names; returns the Corefile's path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    domain = settings.get("domain", CLUSTER_DOMAIN)
    zone = run_dir / "coredns-empty-reverse.zone"
    zone.write_text(EMPTY_REVERSE_ZONE.format(domain=domain))
    path = run_dir / "Corefile"
    path.write_text(corefile(kubeconfig, zone, **settings))
    return path


def coredns_args(
    run_dir: str | Path, kubeconfig: str | Path, *, binary: str | Path = "coredns", **settings: Any
) -> list[str]:
    """CoreDNS's command line; writes the Corefile it names (and its empty reverse zone) into run_dir."""
    return [str(binary), "-conf", str(write_coredns_config(run_dir, kubeconfig, **settings))]


def resolv_conf(namespace: str, *, nameserver: str = DNS_SERVICE_IP, domain: str = CLUSTER_DOMAIN) -> str:
    """A pod's /etc/resolv.conf, as the kubelet writes it for dnsPolicy ClusterFirst: the search path is what
    makes LWS_LEADER_ADDRESS (``<lws>-<group>.<lws>.<ns>``, no domain) resolve."""
    return f"search {namespace}.svc.{domain} svc.{domain} {domain}\nnameserver {nameserver}\noptions ndots:5\n"


def kube_dns_objects(*, service_ip: str = DNS_SERVICE_IP, address: str = COREDNS_ADDRESS) -> list[dict[str, Any]]:
    """The kube-dns Service (selectorless, at service_ip) and the EndpointSlice that points it at CoreDNS.

    No kubelet runs CoreDNS as a pod, so no controller would list its address: the EndpointSlice is written here,
    with a managed-by label of its own so the EndpointSlice controllers leave it alone. kube-proxy reads
    EndpointSlices (not Endpoints), and so does CoreDNS."""
    ipaddress.ip_address(service_ip)
    if ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"{address}: the API server refuses loopback addresses in EndpointSlices")
    labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
    ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": service_ip,
                "ports": [{"name": n, "port": 53, "protocol": p, "targetPort": 53} for n, p in ports],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-sandbox",
                "namespace": "kube-system",
                "labels": {
                    **labels,
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "sandbox.sglang-platform",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": n, "port": 53, "protocol": p} for n, p in ports],
        },
    ]


# --- a DNS question, without dig -------------------------------------------------------------------------------

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "TXT": 16, "AAAA": 28, "SRV": 33}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


@dataclass(frozen=True)
class DnsReply:
    rcode: str
    answers: list[tuple[str, str]]  # (type, value): A/AAAA an address, PTR/CNAME a name, SRV "port target"


def encode_query(name: str, qtype: str, ident: int) -> bytes:
    header = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split(".") if p)
    return header + labels + b"\0" + struct.pack(">HH", QTYPES[qtype], 1)


def _read_name(msg: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(128):  # bounded: a pointer loop in a bad reply must not hang the caller
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            end = pos + 2 if end is None else end
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length == 0:
            return ".".join(labels), (pos + 1 if end is None else end)
        labels.append(msg[pos + 1 : pos + 1 + length].decode("ascii"))
        pos += 1 + length
    raise ValueError("DNS name compression loop")


def decode_reply(msg: bytes, ident: int) -> DnsReply:
    rid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    if rid != ident:
        raise ValueError(f"reply id {rid} != query id {ident}")
    pos = 12
    for _ in range(qd):
        _, pos = _read_name(msg, pos)
        pos += 4
    names = {v: k for k, v in QTYPES.items()}
    answers = []
    for _ in range(an):
        _, pos = _read_name(msg, pos)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[pos : pos + 10])
        pos += 10
        rdata = msg[pos : pos + rdlen]
        kind = names.get(rtype, str(rtype))
        if kind == "A":
            value = str(ipaddress.IPv4Address(rdata))
        elif kind == "AAAA":
            value = str(ipaddress.IPv6Address(rdata))
        elif kind in ("PTR", "CNAME", "NS"):
            value = _read_name(msg, pos)[0]
        elif kind == "SRV":
            port = struct.unpack(">H", rdata[4:6])[0]
            value = f"{port} {_read_name(msg, pos + 6)[0]}"
        else:
            value = rdata.hex()
        answers.append((kind, value))
        pos += rdlen
    return DnsReply(RCODES.get(flags & 0xF, str(flags & 0xF)), answers)


def dns_query(server: str, name: str, qtype: str = "A", *, port: int = 53, timeout: float = 2.0) -> DnsReply:
    """One question over UDP to server:port. Run it inside the netns: outside, the server is not reachable."""
    ident = random.randrange(1 << 16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(encode_query(name, qtype, ident), (server, port))
        return decode_reply(sock.recv(4096), ident)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) in (3, 4) and args[0] == "dns":
        reply = dns_query(args[1], args[2], args[3] if len(args) == 4 else "A")
        print(reply.rcode, *(f"{t}={v}" for t, v in reply.answers))
        return 0
    print("usage: python -m tools.simulation.net dns SERVER NAME [TYPE]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
