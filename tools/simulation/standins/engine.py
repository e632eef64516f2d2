"""The stand-in's engine: a deterministic tokenizer, a prefix (radix) cache, and a continuous-batching scheduler
whose steps take the time the cost model says, so latency and queueing answer to load (docs/standin.md).

Cost model (every parameter an environment variable, defaults in ``CostModel.from_env``):

- A scheduler loop like SGLang's: each iteration either runs one **prefill batch** (new requests, up to
  ``--chunked-prefill-size`` tokens not found in the prefix cache, taking ``tokens / PREFILL_TPS`` seconds) or,
  when nothing waits for prefill, one **decode step** for every running request (``1 / DECODE_TPS +
  DECODE_BATCH_COST x running`` seconds, one token each). Prefill goes first, as in SGLang, so a burst of new
  prompts stalls the tokens of running requests.
- At most ``--max-running-requests`` requests run (default ``SGLANG_STANDIN_MAX_RUNNING_REQUESTS``); a request
  also waits while its prompt does not fit the KV pool (``--max-total-tokens``, default
  ``SGLANG_STANDIN_MAX_TOTAL_TOKENS``). The rest queue, first come first served (``num_queue_reqs``).
- The prefix cache keeps the pages (``--page-size`` tokens) of finished requests' prompts and outputs, least
  recently used first out when the pool needs room; a new request's longest cached prefix (at most its length
  minus one: the last token is always computed) skips prefill. ``--disable-radix-cache`` turns it off.
- The tokenizer: one token per whitespace-separated word with its leading whitespace, token id = CRC32 of the
  text modulo the vocabulary. Outputs are words from a fixed list chosen by the prompt and position, so the same
  request gives the same answer.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import os
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

VOCAB = 32000
WORD = re.compile(r"\s*\S+")
# Common English words: each is one token in the BPE tokenizers bench_serving counts output with.
WORDS = (
    "the of and to in is was for on that with as by at from his her which this be are an or had not but "
    "were have one all their there when who more been if would she will two can its into time only other new "
    "some could these may first then do any like my now over such our man me even most made after also did "
    "many before must through back years where much your way well down should because each just those people"
).split()


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# ---------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------


def token_texts(text: str) -> list[str]:
    return WORD.findall(text)


def token_id(piece: str) -> int:
    return zlib.crc32(piece.encode()) % VOCAB


def encode(text: str) -> list[int]:
    return [token_id(p) for p in token_texts(text)]


def chat_prompt(messages: Sequence[dict]) -> str:
    """The stand-in's chat template: each message as ``<|role|>`` and its text, then the assistant's turn."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: the text parts count
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(f"<|{message.get('role', 'user')}|>\n{content or ''}\n")
    return "".join(parts) + "<|assistant|>\n"


def output_piece(seed: int, index: int) -> str:
    """The ``index``-th output token's text: a word, after a space unless it is the first."""
    word = WORDS[zlib.crc32(f"{seed}:{index}".encode()) % len(WORDS)]
    return word if index == 0 else " " + word


def prefix_digest(ids: Sequence[int], tokens: int) -> str:
    """The digest the stand-in's stats key a prompt's first ``tokens`` tokens by (tests compute it the same way
    from the text or messages they send: ``prefix_digest(encode(chat_prompt(messages)), n)``)."""
    head = ",".join(str(i) for i in ids[:tokens])
    return hashlib.sha256(head.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# Prefix cache
# ---------------------------------------------------------------------------------------------------------


class PrefixCache:
    """Pages of token ids keyed by the hash chain of everything before them, least recently used first out.
    A page is cached only together with every page before it, so a match is a walk from the start."""

    def __init__(self, page_size: int, enabled: bool):
        self.page = max(1, page_size)
        self.enabled = enabled
        self.pages: collections.OrderedDict[int, None] = collections.OrderedDict()

    @property
    def tokens(self) -> int:
        return len(self.pages) * self.page

    def _chain(self, ids: Sequence[int]):
        h = 0
        for start in range(0, len(ids) - len(ids) % self.page, self.page):
            h = hash((h, tuple(ids[start : start + self.page])))
            yield h

    def match(self, ids: Sequence[int]) -> int:
        """Tokens of ``ids`` found (whole pages, never the last token), refreshing them as recently used."""
        if not self.enabled:
            return 0
        found: list[int] = []
        for h in self._chain(ids):
            if h not in self.pages:
                break
            found.append(h)
        for h in reversed(found):  # the shortest prefix ends most recent: evicted last
            self.pages.move_to_end(h)
        return min(len(found) * self.page, max(0, len(ids) - 1))

    def insert(self, ids: Sequence[int]) -> None:
        if not self.enabled:
            return
        chain = list(self._chain(ids))
        for h in reversed(chain):
            self.pages[h] = None
            self.pages.move_to_end(h)

    def evict(self, tokens: int) -> None:
        while self.pages and tokens > 0:
            self.pages.popitem(last=False)
            tokens -= self.page

    def flush(self) -> None:
        self.pages.clear()


# ---------------------------------------------------------------------------------------------------------
# Cost model
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostModel:
    prefill_tps: float  # prompt tokens per second of one prefill batch, shared by its requests
    decode_tps: float  # tokens per second of one request decoding alone (1 / step time at batch 1)
    decode_batch_cost: float  # seconds each running request adds to a decode step
    chunk_tokens: int  # prefill tokens per batch (--chunked-prefill-size); <= 0: unlimited
    max_running: int
    max_total_tokens: int
    page_size: int
    radix: bool
    kv_transfer_s_per_token: float  # PD: seconds per prompt token to move the KV cache to decode

    @classmethod
    def from_env(
        cls,
        *,
        max_running: int | None,
        max_total_tokens: int | None,
        chunk_tokens: int | None,
        page_size: int | None,
        radix: bool,
    ) -> CostModel:
        return cls(
            prefill_tps=env_float("SGLANG_STANDIN_PREFILL_TPS", 20000.0),
            decode_tps=env_float("SGLANG_STANDIN_DECODE_TPS", 50.0),
            decode_batch_cost=env_float("SGLANG_STANDIN_DECODE_BATCH_COST", 0.0002),
            chunk_tokens=chunk_tokens if chunk_tokens is not None else 8192,
            max_running=max_running or env_int("SGLANG_STANDIN_MAX_RUNNING_REQUESTS", 256),
            max_total_tokens=max_total_tokens or env_int("SGLANG_STANDIN_MAX_TOTAL_TOKENS", 262144),
            page_size=page_size or 1,
            radix=radix,
            kv_transfer_s_per_token=env_float("SGLANG_STANDIN_KV_TRANSFER_S_PER_TOKEN", 0.000002),
        )


# ---------------------------------------------------------------------------------------------------------
# Requests and the scheduler
# ---------------------------------------------------------------------------------------------------------

_rids = itertools.count(1)


@dataclass
class Output:
    token: int
    text: str
    index: int  # 0 for the first token
    finished: bool
    at: float


@dataclass(eq=False)
class Req:
    prompt_ids: list[int]
    max_new_tokens: int
    seed: int = 0
    log_metrics: bool = True
    # PD decode: the prefill server computed the prompt and its first token.
    prefilled: bool = False
    warmup: bool = False  # the server's own warmup request: in the metrics (as SGLang's), not in the stats
    head: str = ""  # the prompt's first characters, for the stats
    rid: str = field(default_factory=lambda: f"standin-{next(_rids)}")
    created: float = field(default_factory=time.monotonic)
    outputs: asyncio.Queue[Output | BaseException] = field(default_factory=asyncio.Queue)
    cached_tokens: int = 0
    prefill_left: int = 0
    generated: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    last_token_at: float | None = None
    finished_at: float | None = None
    aborted: bool = False

    @property
    def used_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.generated)


class Engine:
    """One scheduler (rank 0 of the group). ``observer`` hears every token and every finished request (the
    metrics and stats); the fault hooks ``hang`` it (no step runs, so nothing comes out) or ``slow`` it down."""

    def __init__(self, cost: CostModel, observer: EngineObserver):
        self.cost = cost
        self.observer = observer
        self.cache = PrefixCache(cost.page_size, cost.radix)
        self.waiting: collections.deque[Req] = collections.deque()
        self.running: list[Req] = []
        self.wakeup = asyncio.Event()
        self.unhung = asyncio.Event()
        self.unhung.set()
        self.slowdown = 1.0
        self.last_output = 0.0  # monotonic time of the last token out (health_generate's heartbeat)
        self.last_hit_rate = 0.0
        self.decode_steps = 0
        self._throughput_tic = time.monotonic()
        self._throughput_tokens = 0
        self.gen_throughput = 0.0
        self.decode_log_interval = 40

    # -- state the metrics read -------------------------------------------------------------------------------

    @property
    def used_tokens(self) -> int:
        return sum(r.used_tokens for r in self.running)

    @property
    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    # -- requests ---------------------------------------------------------------------------------------------

    def submit(self, req: Req) -> None:
        self.waiting.append(req)
        self.wakeup.set()

    def abort(self, req: Req) -> None:
        req.aborted = True
        if req in self.waiting:
            self.waiting.remove(req)
        self.wakeup.set()

    def flush_cache(self) -> bool:
        if self.busy:
            return False
        self.cache.flush()
        return True

    def hang(self, on: bool) -> None:
        if on:
            self.unhung.clear()
        else:
            self.unhung.set()

    # -- the loop ---------------------------------------------------------------------------------------------

    def _admit(self) -> None:
        while self.waiting and len(self.running) < self.cost.max_running:
            req = self.waiting[0]
            if req.aborted:
                self.waiting.popleft()
                continue
            # What SGLang's PrefillAdder reserves: the prompt and the output clipped to 4096 tokens (without its
            # decaying new-token ratio).
            need = len(req.prompt_ids) + min(req.max_new_tokens, 4096)
            free = self.cost.max_total_tokens - self.used_tokens
            if need > free and self.running:
                break  # the KV pool is full: the head of the queue waits for running requests (FCFS)
            if need > free - self.cache.tokens:
                self.cache.evict(need - (free - self.cache.tokens))
            self.waiting.popleft()
            self.running.append(req)
            if req.prefilled:
                # PD decode: the KV cache arrived with the prefill's first token, which goes out at once.
                req.prefill_left = 0
                self.observer.admitted(req)
                self._emit(req, time.monotonic())
                continue
            req.cached_tokens = self.cache.match(req.prompt_ids)
            req.prefill_left = len(req.prompt_ids) - req.cached_tokens
            self.observer.admitted(req)

    async def run(self) -> None:
        while True:
            await self.unhung.wait()
            self.running = [r for r in self.running if not r.aborted]
            self._admit()
            prefilling = [r for r in self.running if r.prefill_left > 0]
            starting = [r for r in self.running if r.prefill_left == 0 and not r.generated]
            decoding = [r for r in self.running if r.generated]
            if prefilling or starting:
                await self._prefill(prefilling, starting)
            elif decoding:
                await self._decode(decoding)
            else:
                self.wakeup.clear()
                if not self.waiting:
                    await self.wakeup.wait()

    async def _prefill(self, prefilling: list[Req], starting: list[Req]) -> None:
        budget = self.cost.chunk_tokens if self.cost.chunk_tokens > 0 else 1 << 62
        tokens, done = 0, list(starting)
        for req in prefilling:
            take = min(req.prefill_left, budget - tokens)
            if take <= 0:
                break
            req.prefill_left -= take
            tokens += take
            if req.prefill_left == 0:
                done.append(req)
        await asyncio.sleep(tokens / self.cost.prefill_tps * self.slowdown)
        await self.unhung.wait()
        batch = [r for r in done if not r.aborted]
        hit = sum(r.cached_tokens for r in batch)
        total = sum(len(r.prompt_ids) for r in batch)
        if total:
            self.last_hit_rate = hit / total
        now = time.monotonic()
        for req in batch:
            self.cache.insert(req.prompt_ids)
            self._emit(req, now)
        self.observer.prefill_batch(batch)

    async def _decode(self, decoding: list[Req]) -> None:
        step = (1.0 / self.cost.decode_tps + self.cost.decode_batch_cost * len(decoding)) * self.slowdown
        await asyncio.sleep(step)
        await self.unhung.wait()
        now = time.monotonic()
        emitted = 0
        for req in decoding:
            if not req.aborted and req.finished_at is None:
                self._emit(req, now)
                emitted += 1
        self.decode_steps += 1
        self._throughput_tokens += emitted
        if self.decode_steps % self.decode_log_interval == 0:
            # SGLang's gen_throughput: tokens decoded since the last decode log, over the time since.
            self.gen_throughput = self._throughput_tokens / max(1e-9, now - self._throughput_tic)
            self._throughput_tic, self._throughput_tokens = now, 0

    def _emit(self, req: Req, now: float) -> None:
        index = len(req.generated)
        text = output_piece(req.seed, index)
        token = token_id(text)
        req.generated.append(token)
        if req.first_token_at is None:
            req.first_token_at = now
        previous = req.last_token_at
        req.last_token_at = now
        self.last_output = now
        finished = len(req.generated) >= req.max_new_tokens
        self.observer.token(req, now, previous)
        if finished:
            req.finished_at = now
            self.running.remove(req)
            self.cache.insert(req.prompt_ids + req.generated)
            self.observer.finished(req)
        req.outputs.put_nowait(Output(token, text, index, finished, now))


class EngineObserver:
    """What the engine reports; the server's metrics and stats implement it."""

    def admitted(self, req: Req) -> None:
        pass

    def prefill_batch(self, batch: list[Req]) -> None:
        pass

    def token(self, req: Req, now: float, previous: float | None) -> None:
        pass

    def finished(self, req: Req) -> None:
        pass


async def outputs(req: Req) -> collections.abc.AsyncIterator[Output]:
    """The request's tokens as they come; raises what the server failed it with."""
    while True:
        item = await req.outputs.get()
        if isinstance(item, BaseException):
            raise item
        yield item
        if item.finished:
            return


def seed_of(ids: Sequence[int]) -> int:
    return zlib.crc32(",".join(map(str, ids[-64:])).encode())


Clock = Callable[[], float]
