"""The group's rendezvous, as torch.distributed's TCP store does it for SGLang's ``--dist-init-addr``.

Node rank 0 listens on the dist-init port and waits until every other node has connected, within the dist
timeout (``--dist-timeout``; without it torch's default for NCCL groups, 600 s); then every member learns the
group is complete and goes on loading its weights. A worker retries its leader (name not resolving, connection
refused) until the same timeout. The messages are torch's. Once formed, the members keep their connections: a
member that goes away ends the group, as a dead NCCL peer does (the leader and every worker exit non-zero).

Wire format (the stand-in's own, not torch's): one JSON object per line. A worker says
``{"node_rank": R, "nnodes": N, "ranks": r}``; the leader answers ``{"ok": true}`` or ``{"error": "..."}`` and,
once all are in, ``{"group": "complete"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.simulation.standins.httpd import NotLoopbackError, resolve_loopback

# torch.distributed's default process-group timeout for NCCL (torch/distributed/constants.py,
# default_pg_nccl_timeout: 10 minutes), which SGLang passes on when --dist-timeout is not given.
TORCH_DEFAULT_TIMEOUT = 600


class GroupError(Exception):
    """The group could not form or broke: the message is what the process prints before exiting non-zero."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Group:
    nnodes: int
    node_rank: int
    ranks_per_node: int
    timeout: float
    on_lost: Callable[[str], None]
    members: dict[int, asyncio.StreamWriter] = field(default_factory=dict)
    server: asyncio.Server | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task] = field(default_factory=set)

    @property
    def world(self) -> int:
        return self.ranks_per_node * self.nnodes

    # -- rank 0 ------------------------------------------------------------------------------------------------

    async def lead(self, bind: str, port: int) -> None:
        """Listen, wait for every worker within the timeout, then tell them all."""
        self.server = await asyncio.start_server(self._accept, bind, port, reuse_address=True)
        log(f"[stand-in] node 0 waiting on {bind}:{port} for {self.nnodes - 1} more node(s) of the group")
        if self.nnodes > 1:
            try:
                await asyncio.wait_for(self.complete.wait(), self.timeout)
            except TimeoutError:
                joined = self.ranks_per_node * (1 + len(self.members))
                raise GroupError(
                    f"torch.distributed.DistStoreError: Timed out after {int(self.timeout) + 1} seconds waiting "
                    f"for clients. {joined}/{self.world} clients joined."
                ) from None
        self.complete.set()
        for writer in self.members.values():
            _send(writer, {"group": "complete"})
        log(f"[stand-in] group complete: {self.nnodes} node(s), world size {self.world}")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = json.loads(await asyncio.wait_for(reader.readline(), 30) or b"{}")
        except (TimeoutError, ValueError, ConnectionError):
            writer.close()
            return
        rank, nnodes = hello.get("node_rank"), hello.get("nnodes")
        problem = None
        if self.complete.is_set():
            problem = "the group is already complete"
        elif nnodes != self.nnodes:
            problem = f"the worker says --nnodes {nnodes}, node 0 has --nnodes {self.nnodes}"
        elif not isinstance(rank, int) or not 1 <= rank < self.nnodes:
            problem = f"node rank {rank} is not in 1..{self.nnodes - 1}"
        elif rank in self.members:
            problem = f"node rank {rank} already joined"
        if problem is not None:
            _send(writer, {"error": problem})
            log(f"[stand-in] refused a node at {writer.get_extra_info('peername')}: {problem}")
            writer.close()
            return
        assert isinstance(rank, int)
        self.members[rank] = writer
        _send(writer, {"ok": True})
        log(f"[stand-in] node {rank} joined ({1 + len(self.members)}/{self.nnodes})")
        if len(self.members) == self.nnodes - 1:
            self.complete.set()
        # Quietly on shutdown: asyncio logs a connection task that ends cancelled.
        with contextlib.suppress(asyncio.CancelledError):
            await self._watch(reader, f"node {rank}", rank)

    # -- ranks >= 1 --------------------------------------------------------------------------------------------

    async def join(self, host: str, port: int) -> None:
        """Connect to node 0, retrying until the timeout, and wait there until the group is complete."""
        deadline = time.monotonic() + self.timeout
        warned = None
        while True:
            try:
                address = await resolve_loopback(host, port)
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address, port), max(0.1, deadline - time.monotonic())
                )
                break
            except (OSError, TimeoutError) as error:
                why = _why(host, port, error)
                if why != warned:
                    log(f"[W socket.cpp] {why}")
                    warned = why
            if time.monotonic() >= deadline:
                raise GroupError(
                    f"torch.distributed.DistNetworkError: The client socket has timed out after "
                    f"{int(self.timeout * 1000)}ms while trying to connect to ({host}, {port})."
                )
            await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        _send(writer, {"node_rank": self.node_rank, "nnodes": self.nnodes, "ranks": self.ranks_per_node})
        try:
            answer = await asyncio.wait_for(_read(reader), max(0.1, deadline - time.monotonic()))
            if "error" in answer:
                raise GroupError(f"torch.distributed.DistStoreError: node 0 refused this node: {answer['error']}")
            log(f"[stand-in] node {self.node_rank} joined node 0 at {host}:{port}")
            done = await asyncio.wait_for(_read(reader), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            raise GroupError("torch.distributed.DistStoreError: Socket Timeout") from None
        except (ConnectionError, ValueError):
            raise GroupError(f"torch.distributed.DistNetworkError: Connection reset by peer ({host}, {port})") from None
        if done.get("group") != "complete":
            raise GroupError(f"torch.distributed.DistStoreError: unexpected message from node 0: {done}")
        self.complete.set()
        self.members[0] = writer
        self._spawn(self._watch(reader, "node 0"))

    # -- both --------------------------------------------------------------------------------------------------

    async def _watch(self, reader: asyncio.StreamReader, who: str, rank: int | None = None) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass
        if rank is not None and not self.complete.is_set():
            # Gone before the group formed: the store forgets it and node 0 keeps waiting (until its timeout).
            self.members.pop(rank, None)
            log(f"[stand-in] {who} left before the group was complete")
            return
        self.on_lost(who)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.members.values():
            with contextlib.suppress(Exception):
                writer.close()


def _send(writer: asyncio.StreamWriter, message: dict) -> None:
    writer.write(json.dumps(message).encode() + b"\n")


async def _read(reader: asyncio.StreamReader) -> dict:
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed")
    return json.loads(line)


def _why(host: str, port: int, error: BaseException) -> str:
    if isinstance(error, socket.gaierror):
        return (
            f"The IPv4 network addresses of ({host}, {port}) cannot be retrieved "
            f"(gai error: {error.errno} - {error.strerror})."
        )
    if isinstance(error, NotLoopbackError):
        return f"The client socket cannot connect to ({host}, {port}): {error} (the stand-in stays on loopback)."
    if isinstance(error, ConnectionRefusedError):
        return f"The client socket has failed to connect to ({host}, {port}) (errno: 111 - Connection refused)."
    return f"The client socket has failed to connect to ({host}, {port}): {error}."
