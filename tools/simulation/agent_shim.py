"""The container shim of the node agent (its containerd-shim + runc), standard library only.

``python agent_shim.py SPEC.json`` runs one container: it unshares a mount, UTS and PID namespace (the network
namespace is the simulation's, shared like a pod's), forks the container's PID 1 and then, in the child:

- mounts an overlay whose lower layer is this machine's root and whose upper and work dirs are the container's,
  under the agent's run dir: the container may write anywhere in its root, and nothing reaches the host's files;
- pivot_roots into it, with a fresh /proc (its PID namespace), a /dev of the usual nodes and a 64 MiB /dev/shm (a
  runtime's default), a read-only /sys, an empty /run, and /tmp bound to a directory of the container's;
- binds /etc/hosts, /etc/hostname, /etc/resolv.conf and every volume at its mountPath (read-only where asked),
  targets resolved inside the container's root (so /var/run -> /run symlinks resolve there, not on the host);
- sets the hostname, drops the old root, applies readOnlyRootFilesystem, and execs the command.

The parent stays as the shim, in the agent's mount namespace (the child unshares its own: pivot_root moves the
root of every process of a mount namespace): it writes the child's PID once the child has exec'd (for exec probes:
nsenter), forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it and exits with its status (128+N when
killed by signal N). The child dies with the shim (PR_SET_PDEATHSIG), and when PID 1 ends the kernel ends
everything else in its PID namespace. A failure before exec (a mount, a missing executable) is written to the
spec's ``errfile`` and exits 128, which the agent reports as StartError, as the kubelet does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import signal
import sys
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine(), 155)
OLD_ROOT = "/.sandbox-oldroot"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(
        _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {source or fstype} on {target}",
    )


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new: str, old: str) -> None:
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT), new.encode(), old.encode()), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def ensure(path: str, is_dir: bool) -> None:
    """Create a mount target inside the (new) root, following symlinks there; a dangling symlink gets its
    destination created."""
    real = os.path.realpath(path)
    if os.path.exists(real):
        return
    os.makedirs(real if is_dir else os.path.dirname(real), exist_ok=True)
    if not is_dir:
        with open(real, "a"):
            pass


def bind(source: str, target: str, readonly: bool = False) -> None:
    ensure(target, os.path.isdir(source))
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC)


def setup_root(spec: dict) -> None:
    root = spec["rootfs"]
    merged = root["merged"]
    mount("overlay", merged, "overlay", 0, f"lowerdir=/,upperdir={root['upper']},workdir={root['work']}")
    os.makedirs(merged + OLD_ROOT, exist_ok=True)
    pivot_root(merged, merged + OLD_ROOT)
    os.chdir("/")
    old = OLD_ROOT

    ensure("/proc", True)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    ensure("/dev", True)
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for dev in DEVICES:
        if os.path.exists(f"{old}/dev/{dev}"):
            bind(f"{old}/dev/{dev}", f"/dev/{dev}")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ):
        os.symlink(target, f"/dev/{name}")
    os.makedirs("/dev/shm")
    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={spec.get('shm_size') or '65536k'}")
    os.makedirs("/dev/pts")
    ensure("/sys", True)
    mount("sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    ro_root = bool(spec.get("readonly_root"))
    ensure("/run", True)
    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=65536k")
    bind(old + spec["tmp"], "/tmp")

    for f in spec.get("files") or []:
        bind(old + f["source"], f["target"], readonly=bool(f.get("readonly")))
    for m in spec.get("mounts") or []:
        bind(old + m["source"], m["target"], readonly=bool(m.get("readonly")))

    umount(old, MNT_DETACH)
    os.rmdir(old)
    # The working directory is part of the image (WORKDIR): made before a read-only root is sealed.
    os.makedirs(spec.get("workdir") or "/", exist_ok=True)
    if ro_root:  # after every mount target was made: /run and /tmp are part of an image's root too
        mount(None, "/run", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        mount(None, "/tmp", None, MS_BIND | MS_REMOUNT | MS_RDONLY)
        mount(None, "/", None, MS_REMOUNT | MS_RDONLY)
    if spec.get("hostname"):
        sethostname(spec["hostname"])


def child(spec: dict) -> None:
    """PID 1 of the container: set up its view, then exec (never returns)."""
    # Opened before pivot_root (the host's paths are gone after it), closed on exec.
    errfd = os.open(spec["errfile"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        # The mount and UTS namespaces are the child's alone: pivot_root moves the root of every process of the
        # mount namespace, and the shim keeps the host's view (it writes the PID file there).
        unshare(CLONE_NEWNS | CLONE_NEWUTS)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        setup_root(spec)
        os.chdir(spec.get("workdir") or "/")
        argv = spec["argv"]
        if not argv:
            raise OSError("no command specified (neither the pod nor the image table gives one)")
        os.execvpe(argv[0], argv, spec["env"])
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError) else str(exc)
        if isinstance(exc, FileNotFoundError) and spec.get("argv"):
            message = f'exec: "{spec["argv"][0]}": executable file not found in $PATH'
        try:
            text = message + "\n" + ("" if isinstance(exc, OSError) else traceback.format_exc())
            os.write(errfd, text.encode())
        finally:
            os._exit(128)


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    unshare(CLONE_NEWPID)  # for the child: it becomes PID 1 of a new PID namespace
    # The PID is published once the child has exec'd (the pipe's write end closes on exec, or with the child):
    # an exec probe entering earlier would find the container's mounts half made.
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        child(spec)
    os.close(ready_w)
    while os.read(ready_r, 1):
        pass
    os.close(ready_r)
    with open(spec["pidfile"] + ".tmp", "w") as f:
        f.write(str(pid))
    os.replace(spec["pidfile"] + ".tmp", spec["pidfile"])

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            os._exit(128)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
