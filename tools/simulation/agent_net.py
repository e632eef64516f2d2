"""A pod's own addresses in a network namespace all pods share: a small LD_PRELOAD library for the containers.

In Kubernetes every pod has its own network namespace: two pods may both listen on ``0.0.0.0:30000`` (SGLang's
``--host 0.0.0.0``) or ``127.0.0.1:30000`` (``compile_deep_gemm``), and a pod's ``localhost`` is its own. Here all
pods share the simulation's namespace (its only interface is ``lo``; the agent may create no other), so the
second bind would fail with EADDRINUSE. The library rewrites, for dynamically linked programs (Python and its
extensions, the gateway's Rust extension, curl, sh):

- ``bind`` to ``0.0.0.0`` / ``::`` -> the pod IP (``SANDBOX_POD_IP``); to ``127.0.0.1`` / ``::1`` -> the pod's own
  loopback address (``SANDBOX_LOOPBACK``, an address of 127.0.0.0/8, which Linux routes to ``lo`` already);
- ``connect`` to ``127.0.0.1`` or ``0.0.0.0`` (port P) -> the pod's loopback address when something listens there
  on P, else the pod IP when something listens there on P (what bound ``0.0.0.0`` in the pod), else unchanged (e.g.
  the API server on 127.0.0.1:6443). Listeners are read from /proc/net/tcp{,6}, the namespace's.

Statically linked programs (Go binaries) are not covered. The agent builds the library with the machine's C
compiler at its start (no network needed); without a compiler it warns, and pods binding the same port clash.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger("agent.net")

SOURCE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static struct in_addr pod_ip, loop_ip;
static int configured = 0;

__attribute__((constructor)) static void sandbox_net_init(void) {
    real_bind = dlsym(RTLD_NEXT, "bind");
    real_connect = dlsym(RTLD_NEXT, "connect");
    const char *p = getenv("SANDBOX_POD_IP"), *l = getenv("SANDBOX_LOOPBACK");
    configured = p && l && inet_pton(AF_INET, p, &pod_ip) == 1 && inet_pton(AF_INET, l, &loop_ip) == 1;
}

/* Is something listening on addr:port (TCP), per /proc/net/tcp (IPv4) and tcp6 (IPv4-mapped)? */
static int listening(struct in_addr addr, unsigned port) {
    char line[512];
    FILE *f = fopen("/proc/net/tcp", "re");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            unsigned a, p, st;
            if (sscanf(line, " %*d: %8X:%4X %*8X:%*4X %2X", &a, &p, &st) == 3 && st == 0x0A && p == port &&
                (a == addr.s_addr || a == 0)) { fclose(f); return 1; }
        }
        fclose(f);
    }
    f = fopen("/proc/net/tcp6", "re");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            unsigned w0, w1, w2, w3, p, st;
            if (sscanf(line, " %*d: %8X%8X%8X%8X:%4X %*32X:%*4X %2X", &w0, &w1, &w2, &w3, &p, &st) == 6 &&
                st == 0x0A && p == port && w0 == 0 && w1 == 0 && w2 == htonl(0xFFFF) && w3 == addr.s_addr) {
                fclose(f); return 1;
            }
        }
        fclose(f);
    }
    return 0;
}

static void map6(struct sockaddr_in6 *a, struct in_addr v4) {
    memset(&a->sin6_addr, 0, sizeof a->sin6_addr);
    a->sin6_addr.s6_addr[10] = 0xFF;
    a->sin6_addr.s6_addr[11] = 0xFF;
    memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    if (!real_bind) sandbox_net_init();
    if (configured && addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_ANY)) a.sin_addr = pod_ip;
        else if (a.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) a.sin_addr = loop_ip;
        else return real_bind(fd, addr, len);
        return real_bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (configured && addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) map6(&a, pod_ip);
        else if (IN6_IS_ADDR_LOOPBACK(&a.sin6_addr)) map6(&a, loop_ip);
        else return real_bind(fd, addr, len);
        int r = real_bind(fd, (struct sockaddr *)&a, sizeof a);
        if (r == 0 || (errno != EINVAL && errno != EADDRNOTAVAIL)) return r;  /* an IPV6_V6ONLY socket */
    }
    return real_bind(fd, addr, len);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    if (!real_connect) sandbox_net_init();
    if (configured && addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if (a.sin_addr.s_addr == htonl(INADDR_LOOPBACK) || a.sin_addr.s_addr == htonl(INADDR_ANY)) {
            unsigned port = ntohs(a.sin_port);
            if (listening(loop_ip, port)) a.sin_addr = loop_ip;
            else if (listening(pod_ip, port)) a.sin_addr = pod_ip;
            else return real_connect(fd, addr, len);
            return real_connect(fd, (struct sockaddr *)&a, sizeof a);
        }
    }
    if (configured && addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        if (IN6_IS_ADDR_LOOPBACK(&a.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
            unsigned port = ntohs(a.sin6_port);
            if (listening(loop_ip, port)) map6(&a, loop_ip);
            else if (listening(pod_ip, port)) map6(&a, pod_ip);
            else return real_connect(fd, addr, len);
            return real_connect(fd, (struct sockaddr *)&a, sizeof a);
        }
    }
    return real_connect(fd, addr, len);
}
"""


def loopback_for(pod_ip: str) -> str:
    """The pod's own loopback address: 127 and the pod IP's last three octets (unique within a /8 pod range)."""
    return "127." + ".".join(pod_ip.split(".")[1:])


def build(dest_dir: Path) -> Path | None:
    """Compile the library (once per source) into dest_dir; None, with a warning, when there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    lib = dest_dir / f"sandbox-net-{digest}.so"
    if lib.exists():
        return lib
    if cc is None:
        log.warning("no C compiler: pods share the namespace's ports (two pods binding 0.0.0.0:P clash)")
        return None
    dest_dir.mkdir(parents=True, exist_ok=True)
    src = dest_dir / f"sandbox-net-{digest}.c"
    src.write_text(SOURCE)
    tmp = lib.with_suffix(".tmp")
    result = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(tmp), str(src), "-ldl"], capture_output=True, text=True
    )
    if result.returncode != 0:
        log.warning("building %s failed, pods share the namespace's ports: %s", lib.name, result.stderr[-2000:])
        return None
    tmp.rename(lib)
    return lib


def pod_env(lib: Path | None, pod_ip: str, env: dict[str, str]) -> dict[str, str]:
    """The variables that put a container on its pod's addresses (LD_PRELOAD after any the pod sets)."""
    if lib is None:
        return env
    out = dict(env)
    out["SANDBOX_POD_IP"] = pod_ip
    out["SANDBOX_LOOPBACK"] = loopback_for(pod_ip)
    out["LD_PRELOAD"] = ":".join(p for p in (str(lib), env.get("LD_PRELOAD", "")) if p)
    return out
