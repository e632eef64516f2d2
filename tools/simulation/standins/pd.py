"""Prefill/decode disaggregation: the prefill server's bootstrap server and the hand-over of a request's KV cache.

What SGLang does (srt/disaggregation, mooncake and common conn.py of each release): the gateway sends every
request to a prefill and a decode server at once, both bodies carrying ``bootstrap_host`` and ``bootstrap_port``
(the prefill server's) and one random ``bootstrap_room``. Decode asks the prefill's bootstrap server (GET
``/route``) where the prefill ranks are, hands them the room's KV destination, and waits for the KV cache;
prefill waits for decode's destination (``SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT``, 300 s), computes the prompt,
sends the cache and the first token, and answers the gateway with that one token; decode generates the rest and
its answer is the client's. A request without a room is refused by both ("Disaggregated request received
without bootstrap room id"); one whose KV never comes fails after ``SGLANG_DISAGGREGATION_WAITING_TIMEOUT``.

The stand-in keeps that shape over HTTP on the bootstrap port: ``/route`` and ``/health`` as SGLang's, plus
``POST /stand-in/kv`` through which decode claims a room and receives what the KV transfer would carry (the
prompt's token count, the cached part, the first token). Both ends name themselves (pod, **revision** -- the
pod's ``sglang-platform.io/pd-revision`` label, given to the process in ``SGLANG_STANDIN_POD_LABELS`` --, served
model and weights) and refuse a partner of another revision or model: a real pair of mismatched revisions would
exchange incompatible caches silently; the stand-in makes that pairing an error the tests can observe, and
records every pair it served in ``/stand-in/stats``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tools.simulation.standins.httpd import HttpError, Request, Response, request_json

# disaggregation/utils.py (0.4.10 on): the bootstrap host of health checks and warmups that pair with no one.
FAKE_BOOTSTRAP_HOST = "2.2.2.2"
NO_ROOM = "Invalid request: Disaggregated request received without bootstrap room id."


class PDError(Exception):
    def __init__(self, message: str, status: int = 500, refused: bool = False):
        super().__init__(message)
        self.status, self.refused = status, refused


def mismatch(mine: dict, theirs: dict) -> str | None:
    """Why two servers must not pair, or None."""
    if mine.get("revision") != theirs.get("revision"):
        return (
            f"{theirs.get('mode')} server {theirs.get('pod')} is revision {theirs.get('revision')!r}, "
            f"{mine.get('mode')} server {mine.get('pod')} is revision {mine.get('revision')!r}: "
            "a prefill and a decode server of different revisions do not pair"
        )
    if mine.get("model_path") != theirs.get("model_path"):
        return (
            f"{theirs.get('mode')} server {theirs.get('pod')} serves {theirs.get('model_path')!r}, "
            f"{mine.get('mode')} server {mine.get('pod')} serves {mine.get('model_path')!r}"
        )
    return None


@dataclass
class Room:
    created: float = field(default_factory=time.monotonic)
    claimed: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    kv: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BootstrapServer:
    """The prefill leader's bootstrap server (its HTTP handler; the caller binds it)."""

    def __init__(
        self,
        identity: dict,
        layout: dict,
        bootstrap_timeout: float,
        waiting_timeout: float,
        on_refused: Callable[[dict, str], None],
    ):
        self.identity = identity
        self.layout = layout
        self.bootstrap_timeout = bootstrap_timeout
        self.waiting_timeout = waiting_timeout
        self.on_refused = on_refused
        self.rooms: dict[int, Room] = {}
        self.ready = False

    def room(self, room: int) -> Room:
        if room not in self.rooms:
            made = self.rooms[room] = Room()
            for future in (made.claimed, made.kv):
                future.add_done_callback(_retrieve)  # a side that never came must not log "never retrieved"
        return self.rooms[room]

    async def handle(self, request: Request) -> Response:
        if request.path == "/health" and request.method == "GET":
            return Response.text("OK")
        if request.path == "/route":
            if request.method == "PUT":
                return Response.text("OK")
            if request.method != "GET":
                return Response.text("Method not allowed", 405, "application/json")
            if not self.ready:
                return Response.text("Prefill server not fully registered yet (0 workers registered).", 503)
            return Response.json({**self.layout, "standin": self.identity})
        if request.path == "/stand-in/kv" and request.method == "POST":
            return await self._claim(request.json() or {})
        return Response.text("Not Found", 404)

    async def _claim(self, body: dict) -> Response:
        room_id = int(body.get("room", -1))
        decode = body.get("decode") or {}
        problem = mismatch(self.identity, decode)
        room = self.room(room_id)
        if problem is not None:
            # Fail the prefill side now rather than after its bootstrap timeout.
            if not room.claimed.done():
                room.claimed.set_exception(PDError(problem, refused=True))
            self.on_refused(decode, problem)
            self._forget_later(room_id)
            return Response.json({"error": problem}, 409)
        if not room.claimed.done():
            room.claimed.set_result(decode)
        try:
            kv = await asyncio.wait_for(asyncio.shield(room.kv), self.bootstrap_timeout + self.waiting_timeout)
        except TimeoutError:
            waited = time.monotonic() - room.created
            return Response.json(
                {"error": f"Request {room_id} timed out after {waited:.1f}s in KVPoll.WaitingForInput"}, 500
            )
        except PDError as error:
            return Response.json({"error": str(error)}, error.status)
        finally:
            self._forget_later(room_id)
        return Response.json(kv)

    def _forget_later(self, room_id: int) -> None:
        room = self.rooms.get(room_id)
        asyncio.get_running_loop().call_later(5.0, self._forget, room_id, room)

    def _forget(self, room_id: int, room: Room | None) -> None:
        if room is not None and self.rooms.get(room_id) is room:
            del self.rooms[room_id]

    async def serve_room(self, room_id: int, prefill: Callable[[dict], Awaitable[dict]]) -> dict:
        """Prefill's side of one request: wait for decode's claim, run ``prefill(decode_identity)`` (the engine
        and the transfer), hand decode its result. Returns decode's identity; raises PDError."""
        room = self.room(room_id)
        try:
            decode = await asyncio.wait_for(asyncio.shield(room.claimed), self.bootstrap_timeout)
        except TimeoutError:
            self._forget_later(room_id)
            raise PDError(
                f"Request {room_id} timed out after {time.monotonic() - room.created:.1f}s in KVPoll.Bootstrapping"
            ) from None
        try:
            kv = await prefill(decode)
        except BaseException as error:
            if not room.kv.done():
                room.kv.set_exception(PDError(f"KV transfer failed for request room {room_id}: {error}"))
            raise
        if not room.kv.done():
            room.kv.set_result(kv)
        self._forget(room_id, room)  # handed over: a later request may draw the same room id
        return decode


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


async def fetch_kv(
    host: str,
    port: int,
    room: int,
    identity: dict,
    route_query: dict[str, str],
    bootstrap_timeout: float,
    waiting_timeout: float,
) -> tuple[dict, dict]:
    """Decode's side: the prefill server's identity and the KV hand-over of ``room``; raises PDError."""
    where = f"{host}:{port}"
    try:
        info = await request_json("GET", host, port, "/route", query=route_query, timeout=bootstrap_timeout)
    except HttpError as error:
        raise PDError(f"Failed to get prefill server info from {where}: {error}") from None
    except (OSError, TimeoutError) as error:
        raise PDError(f"Failed to connect to the bootstrap server at {where}: {error!r}") from None
    prefill = (info or {}).get("standin") or {}
    problem = mismatch(identity, prefill)
    if problem is not None:
        # Tell the prefill server too, so its half of the request fails now.
        try:
            await request_json("POST", host, port, "/stand-in/kv", {"room": room, "decode": identity}, timeout=10)
        except (HttpError, OSError, TimeoutError):
            pass
        raise PDError(problem, refused=True)
    try:
        kv = await request_json(
            "POST",
            host,
            port,
            "/stand-in/kv",
            {"room": room, "decode": identity},
            timeout=bootstrap_timeout + waiting_timeout + 5,
        )
    except HttpError as error:
        message = error.body.decode(errors="replace")
        try:
            import json

            message = json.loads(error.body).get("error", message)
        except ValueError:
            pass
        raise PDError(message, refused=error.status == 409) from None
    except (OSError, TimeoutError) as error:
        raise PDError(f"KV transfer from {where} failed for room {room}: {error!r}") from None
    return prefill, kv
