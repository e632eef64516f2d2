"""A model hub stand-in: Hugging Face's and ModelScope's download API for small synthetic models, on loopback.

The platform's download Job and weights stagers run the real hub clients (``pod_scripts/download_model.py``:
huggingface_hub's ``snapshot_download`` and ``HfApi.model_info``, modelscope's ``snapshot_download`` and
``HubApi``), and ``pulumi preview`` reads each model's ``config.json`` (``live/config_json.py``). Pointed at this
server (``HF_ENDPOINT``, ``MODELSCOPE_ENDPOINT``, or the stack's ``modelHubs``), they run unchanged. What is served
is what those clients call, read from their sources (huggingface_hub 2.4.0, modelscope 1.40.2 with modelscope-hub
0.5.1) and run against this server by ``tests/test_hub_standin.py``:

Hugging Face
  ``GET /api/models/{repo}[/revision/{rev}][?blobs=True]``   model info: ``sha``, ``siblings`` (with ``size``,
                                                              ``blobId``, ``lfs`` when ``blobs``)
  ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=``   the file tree, 1000 entries a page (``Link: rel=next``)
  ``HEAD|GET /{repo}/resolve/{rev}/{path}``                   a small file: 200, ``X-Repo-Commit``, ``ETag`` (the
                                                              git blob id), ``Content-Length``, ranges. An LFS file
                                                              (``*.safetensors``, ``*.bin``): 302 to the CDN port with
                                                              ``X-Linked-Etag`` (its sha256) and ``X-Linked-Size``,
                                                              as the Hub redirects to its CDN: the client takes the
                                                              metadata from the redirect and does not send its token on
  Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and ``{"error": ...}``.

ModelScope (every answer in its ``{"Code", "Data", "Message", "Success", "RequestId"}`` envelope)
  ``GET /api/v1/models/{repo}/repo/files?Revision=&Recursive=``  the file list: ``Path``, ``Name``, ``Type`` (blob,
                                                                  tree), ``Size``, ``Sha256``, ``Revision`` (the
                                                                  commit that last changed the file), ``IsLFS``, ...
  ``GET /api/v1/models/{repo}/revisions``                         ``RevisionMap``: ``Branches``, ``Tags``
                                                                  (``Revision``, ``CreatedAt``)
  ``HEAD|GET /api/v1/models/{repo}/repo?Revision=&FilePath=``     a file: 200 for a small one, 302 to the CDN port for
                                                                  an LFS one (``X-Linked-ETag`` there)
  ``GET /api/v1/repos/internalAccelerationInfo``                  no acceleration (an empty query address: the real
                                                                  one names a cloud metadata address, never loopback)

The CDN (a second port) serves LFS objects by sha256 with ranges; it never asks for a token.

Models are generated at start from specs (``--model``): a ``config.json`` with the architecture and quantization
fields the platform's checks read (the real model's values for the families below), ``generation_config.json``, a
word-level tokenizer that ``transformers.AutoTokenizer`` loads (``tokenizer.json``, ``tokenizer_config.json``: the
words of the SGLang stand-in's answers and of the benchmark's prompts), and a few small safetensors shards with
their index; deterministic bytes, so hashes and commit ids are the same at every start. A spec:

    REPO[@COMMIT][,key=value...]
    Qwen/Qwen2.5-1.5B-Instruct@989aa7980e4cf806f80c7fef2b1adb7bc71aa306
    meituan/DeepSeek-R1-Block-INT8,quant=int8-block,shards=3

``@COMMIT`` pins the commit id (what a stack pins as ``model.download.revision``); without it the commit id is
derived from the content. Keys: ``arch`` (qwen2, deepseek-v3; default from the name), ``quant`` (none, fp8-block,
int8-block, w8a8-int8; default: the platform's known model of that name, else none), ``shards`` [2],
``shard-kib`` [256], ``branches`` [main+master: both hubs' default branch], ``tags`` (``+``-separated),
``gated`` (the repository wants ``--token``). ``--stack-file`` adds the specs of a stack's groups.

Repositories already under ``--models-dir`` (``owner/name/`` directories not generated here) are served as they
are, one commit each, so a real small model can be dropped in.

Control (for tests and the sandbox): ``GET /stand-in/requests`` (what was asked, with whether a token came),
``DELETE /stand-in/requests``, ``GET /stand-in/models``, ``POST /stand-in/advance`` with
``{"repo": ..., "branch": "master"}`` (a new commit on the branch that changes ``README.md``: a moving revision).

    python -m tools.simulation.standins.hub --host 127.0.0.1 --port 8090 --models-dir /tmp/hub \\
        --model Qwen/Qwen2.5-1.5B-Instruct@989aa7980e4cf806f80c7fef2b1adb7bc71aa306

Loopback only, like the other stand-ins (``bind_address``); standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import importlib.util
import json
import os
import re
import shutil
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.simulation.standins.httpd import bind_address

ROOT = Path(__file__).resolve().parents[3]
COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
# Where the generator keeps what it made, so a restart over the same directory knows its own repositories.
GENERATED = ".hub-standin.json"
TREE_PAGE = 1000
# The time every generated commit carries: fixed, so answers do not change between starts.
EPOCH = 1735689600  # 2025-01-01T00:00:00Z
ARCHS = ("qwen2", "deepseek-v3")
QUANTS = ("none", "fp8-block", "int8-block", "w8a8-int8")


def log(message: str) -> None:
    print(f"[hub stand-in] {message}", file=sys.stderr, flush=True)


# --- model specs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    repo: str
    commit: str | None = None
    arch: str = "qwen2"
    quant: str = "none"
    shards: int = 2
    shard_bytes: int = 256 * 1024
    branches: tuple[str, ...] = ("main", "master")
    tags: tuple[str, ...] = ()
    gated: bool = False


def _default_arch(repo: str) -> str:
    name = repo.rsplit("/", 1)[-1].lower()
    return "deepseek-v3" if "deepseek" in name and "distill" not in name else "qwen2"


def _default_quant(repo: str) -> str:
    """The platform's own table of known models (facts/model_catalogue.py), when it is importable."""
    try:
        from sglang_platform.facts.model_catalogue import known_model
    except ImportError:
        return "none"
    model = known_model(repo)
    return model.quantization if model is not None and model.quantization in QUANTS else "none"


def parse_spec(text: str) -> ModelSpec:
    """``REPO[@COMMIT][,key=value...]`` (module docstring); ValueError names what is wrong."""
    head, *options = [part.strip() for part in text.split(",")]
    repo, _, commit = head.partition("@")
    if not REPO.match(repo):
        raise ValueError(f"model spec {text!r}: {repo!r} is not a repository id (owner/name)")
    if commit and not COMMIT.match(commit):
        raise ValueError(f"model spec {text!r}: {commit!r} is not a 40-character commit id")
    values: dict[str, Any] = {"repo": repo, "commit": commit or None}
    for option in options:
        key, sep, value = option.partition("=")
        if key == "gated" and not sep:
            values["gated"] = True
        elif key == "arch" and value in ARCHS:
            values["arch"] = value
        elif key == "quant" and value in QUANTS:
            values["quant"] = value
        elif key == "shards" and value.isdigit() and 1 <= int(value) <= 64:
            values["shards"] = int(value)
        elif key == "shard-kib" and value.isdigit() and 1 <= int(value) <= 4 * 1024 * 1024:
            values["shard_bytes"] = int(value) * 1024
        elif key in ("branches", "tags") and value:
            values[key] = tuple(v for v in value.split("+") if v)
        else:
            raise ValueError(
                f"model spec {text!r}: {option!r} is not one of arch={'|'.join(ARCHS)}, quant={'|'.join(QUANTS)}, "
                "shards=1..64, shard-kib=N, branches=a+b, tags=a+b, gated"
            )
    values.setdefault("arch", _default_arch(repo))
    values.setdefault("quant", _default_quant(repo))
    return ModelSpec(**values)


def specs_for_stack(values: Mapping[str, Any]) -> list[ModelSpec]:
    """The models a stack's groups download from a hub (its ``sglang-platform:*`` values without the prefix), each
    at the revision the stack names: a commit is the commit id, anything else a branch pointing at it."""
    from sglang_platform.facts.presets import apply_preset

    out: dict[str, ModelSpec] = {}
    for raw in values.get("inferenceGroups") or []:
        # A preset's model and source (the PD example names only its preset) are the group's, as the stack's own.
        group = apply_preset(raw)
        model = group.get("model") or {}
        download = model.get("download") or {}
        repo, revision = download.get("repo"), str(download.get("revision") or "main")
        if model.get("source") not in ("huggingface", "modelscope") or not repo:
            continue
        spec = parse_spec(repo)
        # A declared quantization is what the checkpoint must say (the preview refuses a mismatch).
        declared = str(model.get("quantization") or "")
        quant = declared if declared in QUANTS else spec.quant
        previous = out.get(repo, spec)
        commit = revision if COMMIT.match(revision) else previous.commit
        branches = previous.branches if COMMIT.match(revision) else tuple(dict.fromkeys((*previous.branches, revision)))
        out[repo] = ModelSpec(**(spec.__dict__ | {"commit": commit, "branches": branches, "quant": quant}))
    return list(out.values())


# --- what a generated model holds --------------------------------------------------------------------------


def model_config(spec: ModelSpec) -> dict[str, Any]:
    """config.json: the real model's architecture fields for the family (what the platform's tensor-parallel,
    KV-cache and quantization rules read), and its quantization block as the checkpoint would carry it."""
    if spec.arch == "deepseek-v3":
        # deepseek-ai/DeepSeek-V3 (and -R1) config.json
        config: dict[str, Any] = {
            "architectures": ["DeepseekV3ForCausalLM"],
            "model_type": "deepseek_v3",
            "hidden_size": 7168,
            "intermediate_size": 18432,
            "moe_intermediate_size": 2048,
            "num_attention_heads": 128,
            "num_key_value_heads": 128,
            "num_hidden_layers": 61,
            "n_routed_experts": 256,
            "n_shared_experts": 1,
            "num_experts_per_tok": 8,
            "kv_lora_rank": 512,
            "q_lora_rank": 1536,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "v_head_dim": 128,
            "max_position_embeddings": 163840,
            "vocab_size": 129280,
            "torch_dtype": "bfloat16",
            "auto_map": {
                "AutoConfig": "configuration_deepseek.DeepseekV3Config",
                "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM",
            },
        }
    else:
        # Qwen/Qwen2.5-1.5B-Instruct config.json
        config = {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_size": 1536,
            "intermediate_size": 8960,
            "num_attention_heads": 12,
            "num_key_value_heads": 2,
            "num_hidden_layers": 28,
            "max_position_embeddings": 32768,
            "vocab_size": 151936,
            "torch_dtype": "bfloat16",
            "tie_word_embeddings": True,
        }
    quantization = {
        "fp8-block": {
            "quant_method": "fp8",
            "fmt": "e4m3",
            "activation_scheme": "dynamic",
            "weight_block_size": [128, 128],
        },
        "int8-block": {
            "quant_method": "blockwise_int8",
            "activation_scheme": "dynamic",
            "weight_block_size": [128, 128],
        },
        "w8a8-int8": {
            "quant_method": "compressed-tensors",
            "format": "int-quantized",
            "config_groups": {
                "group_0": {
                    "targets": ["Linear"],
                    "weights": {"type": "int", "num_bits": 8, "strategy": "channel", "symmetric": True},
                    "input_activations": {"type": "int", "num_bits": 8, "strategy": "token", "dynamic": True},
                }
            },
        },
    }.get(spec.quant)
    if quantization is not None:
        config["quantization_config"] = quantization
    return config


def vocabulary() -> list[str]:
    """Every word the SGLang stand-in answers with and the benchmark's prompts are made of, so neither turns into
    unknown tokens; the benchmark script's words read from the script the platform ships."""
    from tools.simulation.standins.engine import WORDS

    words = list(WORDS)
    script = ROOT / "pod_scripts" / "serving_benchmark.py"
    spec = importlib.util.spec_from_file_location("_serving_benchmark_words", script)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        words += list(module.WORDS)
    return list(dict.fromkeys([*words, *(f"t{i}" for i in range(256))]))


def tokenizer_files() -> dict[str, bytes]:
    """A word-level tokenizer in the ``tokenizers`` JSON format, with the special tokens a chat model has."""
    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    vocab = {w: i for i, w in enumerate([*specials, *vocabulary()])}
    added = [
        {
            "id": i,
            "content": w,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, w in enumerate(specials)
    ]
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "<unk>",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 131072,
        "chat_template": (
            "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
        ),
    }
    return {"tokenizer.json": _json(tokenizer), "tokenizer_config.json": _json(config)}


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def _stream(seed: str, size: int) -> bytes:
    """Deterministic bytes: SHAKE-256 of the seed."""
    return hashlib.shake_256(seed.encode()).digest(size)


def safetensors(tensors: Mapping[str, bytes]) -> bytes:
    """A safetensors file of U8 tensors: 8-byte little-endian header length, the JSON header (padded to 8 bytes,
    as the library writes it), then the data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, data in tensors.items():
        header[name] = {"dtype": "U8", "shape": [len(data)], "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(tensors.values())


def model_files(spec: ModelSpec) -> dict[str, bytes]:
    """Every file of a generated repository, by path."""
    files: dict[str, bytes] = {
        ".gitattributes": b"".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n".encode() for s in LFS_SUFFIXES),
        "README.md": f"# {spec.repo}\n\nA synthetic model served by the sglang-platform hub stand-in.\n".encode(),
        "config.json": _json(model_config(spec)),
        "generation_config.json": _json({"bos_token_id": 1, "eos_token_id": 2, "do_sample": True}),
    }
    files |= tokenizer_files()
    names = (
        ["model.safetensors"]
        if spec.shards == 1
        else [f"model-{i:05d}-of-{spec.shards:05d}.safetensors" for i in range(1, spec.shards + 1)]
    )
    weight_map: dict[str, str] = {}
    total = 0
    for i, name in enumerate(names):
        tensor = f"model.layers.{i}.mlp.down_proj.weight"
        # The header takes a few hundred bytes of the shard's size.
        data = _stream(f"{spec.repo}/{name}", max(spec.shard_bytes - 256, 8))
        files[name] = safetensors({tensor: data})
        weight_map[tensor] = name
        total += len(data)
    if spec.shards > 1:
        files["model.safetensors.index.json"] = _json({"metadata": {"total_size": total}, "weight_map": weight_map})
    return files


# --- repositories: commits and refs over files on disk -----------------------------------------------------


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One file of a commit."""

    path: str
    size: int
    sha256: str
    blob_id: str
    lfs: bool
    source: Path
    # The commit that last changed this file (ModelScope's per-file Revision).
    changed_in: str

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n".encode()

    @property
    def oid(self) -> str:
        """What a git tree lists: the blob's id, for an LFS file the pointer's."""
        return git_blob_id(self.pointer) if self.lfs else self.blob_id


@dataclass
class Commit:
    id: str
    created_at: int
    message: str
    files: dict[str, Entry]


@dataclass
class Repository:
    repo: str
    directory: Path
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    gated: bool = False

    def resolve(self, revision: str) -> Commit | None:
        """A branch, a tag, or a commit id (as the hubs accept any of them)."""
        ref = self.branches.get(revision) or self.tags.get(revision) or revision
        return self.commits.get(ref)


def _entries(directory: Path, commit_id: str, previous: Mapping[str, Entry] | None = None) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel == GENERATED or rel.startswith(".git/"):
            continue
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        old = (previous or {}).get(rel)
        changed = old.changed_in if old is not None and old.sha256 == sha else commit_id
        out[rel] = Entry(rel, len(data), sha, git_blob_id(data), rel.endswith(LFS_SUFFIXES), path, changed)
    return out


def _content_commit(repo: str, directory: Path) -> str:
    digest = hashlib.sha1(f"hub-standin\0{repo}\0".encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != GENERATED):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + git_blob_id(path.read_bytes()).encode())
    return digest.hexdigest()


def generate(spec: ModelSpec, models_dir: Path) -> Repository:
    """Write the spec's files under models_dir/owner/name (replacing what an earlier start wrote there)."""
    directory = models_dir / spec.repo
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for rel, data in model_files(spec).items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(data)
    commit = spec.commit or _content_commit(spec.repo, directory)
    (directory / GENERATED).write_text(json.dumps({"spec": spec.__dict__, "commit": commit}) + "\n")
    return _repository(spec.repo, directory, commit, spec.branches, spec.tags, spec.gated)


def _repository(
    repo: str, directory: Path, commit: str, branches: Iterable[str], tags: Iterable[str], gated: bool
) -> Repository:
    entries = _entries(directory, commit)
    return Repository(
        repo,
        directory,
        commits={commit: Commit(commit, EPOCH, "Upload the model", entries)},
        branches=dict.fromkeys(branches, commit),
        tags=dict.fromkeys(tags, commit),
        gated=gated,
    )


def load_models_dir(models_dir: Path, generated: Iterable[str]) -> dict[str, Repository]:
    """Repositories placed under models_dir by hand (owner/name directories this run did not generate)."""
    out: dict[str, Repository] = {}
    skip = set(generated)
    for owner in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for directory in sorted(p for p in owner.iterdir() if p.is_dir()):
            repo = f"{owner.name}/{directory.name}"
            if repo in skip or not REPO.match(repo) or (directory / GENERATED).exists():
                continue
            out[repo] = _repository(repo, directory, _content_commit(repo, directory), ("main", "master"), (), False)
    return out


class Hub:
    """The repositories served, and what was asked of them."""

    def __init__(self, repositories: Mapping[str, Repository], token: str | None = None):
        self.repos = dict(repositories)
        self.token = token
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.blobs: dict[str, Entry] = {}
        for repo in self.repos.values():
            self._index(repo)

    def _index(self, repo: Repository) -> None:
        for commit in repo.commits.values():
            for entry in commit.files.values():
                self.blobs.setdefault(entry.sha256, entry)

    def record(self, **request: Any) -> None:
        with self.lock:
            self.requests.append(request)
            del self.requests[:-10000]

    def advance(self, repo_id: str, branch: str) -> Commit:
        """A new commit on ``branch`` that rewrites README.md: the branch moves, the weights stay."""
        with self.lock:
            repo = self.repos[repo_id]
            head = repo.commits[repo.branches[branch]]
            number = len(repo.commits)
            readme = repo.directory.parent / f".{repo.directory.name}.commit-{number}.README.md"
            readme.write_bytes(f"# {repo_id}\n\nRevision {number} of the synthetic model.\n".encode())
            commit_id = hashlib.sha1(f"{head.id}\0{number}".encode()).hexdigest()
            data = readme.read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            files = dict(head.files)
            files["README.md"] = Entry("README.md", len(data), sha, git_blob_id(data), False, readme, commit_id)
            commit = Commit(commit_id, head.created_at + 60 * number, f"Revision {number}", files)
            repo.commits[commit_id] = commit
            repo.branches[branch] = commit_id
            self.blobs.setdefault(sha, files["README.md"])
            return commit


# --- HTTP --------------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub-standin"
    hub: Hub
    cdn_port: int
    cdn_url: str | None
    # Which server answered, in the request log: "hub" or "cdn".
    role = "hub"

    def log_message(self, *args: Any) -> None:  # the request log is served on /stand-in/requests instead
        pass

    # --- plumbing

    def _reply(
        self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None, kind: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _json(self, status: int, value: Any, headers: Mapping[str, str] | None = None) -> None:
        self._reply(status, json.dumps(value).encode(), headers)

    def _file(self, entry: Entry, headers: Mapping[str, str]) -> None:
        """The file's bytes, whole or the one range asked (``Range: bytes=a-[b]``), as both hubs' storage does."""
        size = entry.size
        start, end = 0, size - 1
        status = 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        if wanted:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)), size - 1) if wanted.group(2) else size - 1
            if start >= size or start > end:
                self._reply(416, b"", {"Content-Range": f"bytes */{size}"} | dict(headers), "text/plain")
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self._status = status
        if self.command == "HEAD":
            return
        with entry.source.open("rb") as handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = handle.read(min(left, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth.removeprefix("Bearer ").strip()
        cookie = self.headers.get("Cookie", "")
        found = re.search(r"m_session_id=([^;\s]+)", cookie)
        return found.group(1) if found else None

    def _cdn_location(self, repo_id: str, entry: Entry) -> str:
        query = urllib.parse.urlencode({"repo": repo_id, "path": entry.path})
        return f"{self._cdn_base()}/lfs/{entry.sha256}?{query}"

    def _cdn_base(self) -> str:
        if self.cdn_url:
            return self.cdn_url.rstrip("/")
        # The name the client used for the hub, with the CDN's port: a different origin, as the Hub's CDN is.
        host = urllib.parse.urlsplit(f"//{self.headers.get('Host') or '127.0.0.1'}").hostname or "127.0.0.1"
        return origin(host, self.cdn_port)

    def _handle(self) -> None:
        self._status = 0
        url = urllib.parse.urlsplit(self.path)
        started = time.monotonic()
        try:
            self.route(url.path, urllib.parse.parse_qs(url.query))
        finally:
            self.hub.record(
                server=self.role,
                method=self.command,
                path=url.path,
                query=url.query,
                status=self._status,
                token=self._token(),
                range=self.headers.get("Range"),
                seconds=round(time.monotonic() - started, 4),
            )

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def route(self, path: str, query: Mapping[str, list[str]]) -> None:
        raise NotImplementedError


class HubHandler(_Handler):
    def route(self, path: str, query: Mapping[str, list[str]]) -> None:
        if path.startswith("/stand-in/"):
            return self.control(path)
        if path == "/api/v1/repos/internalAccelerationInfo":
            return self.ms_ok({"InternalRegionQueryAddress": ""})
        if path.startswith("/api/v1/models/"):
            return self.modelscope(path.removeprefix("/api/v1/models/"), query)
        if path.startswith("/api/models/"):
            return self.hf_api(path.removeprefix("/api/models/"), query)
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, revision = "/".join(parts[:2]), urllib.parse.unquote(parts[3])
            return self.hf_resolve(repo, revision, urllib.parse.unquote("/".join(parts[4:])))
        return self._json(404, {"error": "Not Found"})

    # --- Hugging Face

    def hf_error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        if commit:
            headers["X-Repo-Commit"] = commit
        self._json(status, {"error": message}, headers)

    def hf_repo(self, repo_id: str) -> Repository | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self.hf_error(404, "RepoNotFound", "Repository not found")
            return None
        if repo.gated and self._token() != self.hub.token:
            status = 401 if self._token() is None else 403
            self.hf_error(status, "GatedRepo", f"Access to model {repo_id} is restricted.")
            return None
        return repo

    def hf_api(self, rest: str, query: Mapping[str, list[str]]) -> None:
        found = re.fullmatch(r"([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(/.*)?)?", rest)
        if not found:
            return self.hf_error(404, "RepoNotFound", "Repository not found")
        repo_id, kind, revision, sub = found.groups()
        repo = self.hf_repo(repo_id)
        if repo is None:
            return None
        revision = urllib.parse.unquote(revision or "main")
        commit = repo.resolve(revision)
        if commit is None:
            return self.hf_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if kind == "tree":
            return self.hf_tree(repo, commit, urllib.parse.unquote((sub or "").strip("/")), query)
        if sub:
            return self.hf_error(404, "EntryNotFound", "Entry not found")
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for entry in commit.files.values():
            sibling: dict[str, Any] = {"rfilename": entry.path}
            if blobs:
                sibling |= {"size": entry.size, "blobId": entry.oid}
                if entry.lfs:
                    sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)}
            siblings.append(sibling)
        config = json.loads(commit.files["config.json"].source.read_bytes()) if "config.json" in commit.files else {}
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(commit.created_at))
        info = {
            "_id": hashlib.md5(repo.repo.encode()).hexdigest()[:24],
            "id": repo.repo,
            "modelId": repo.repo,
            "author": repo.repo.split("/")[0],
            "sha": commit.id,
            "lastModified": stamp,
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(EPOCH)),
            "private": False,
            "disabled": False,
            "gated": "auto" if repo.gated else False,
            "downloads": 0,
            "likes": 0,
            "library_name": "transformers",
            "pipeline_tag": "text-generation",
            "tags": ["transformers", "safetensors", "text-generation"],
            "config": {k: config[k] for k in ("architectures", "model_type") if k in config},
            "siblings": siblings,
            "spaces": [],
        }
        if blobs:
            info["usedStorage"] = sum(e.size for e in commit.files.values())
        return self._json(200, info)

    def hf_tree(self, repo: Repository, commit: Commit, sub: str, query: Mapping[str, list[str]]) -> None:
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        prefix = f"{sub}/" if sub else ""
        if sub and not any(p.startswith(prefix) for p in commit.files):
            return self.hf_error(404, "EntryNotFound", f"{sub} does not exist on {commit.id}")
        items: list[dict[str, Any]] = []
        folders: set[str] = set()
        for entry in commit.files.values():
            if not entry.path.startswith(prefix):
                continue
            rest = entry.path[len(prefix) :]
            if "/" in rest:
                parts = rest.split("/")[:-1]
                depth = len(parts) if recursive else 1
                for i in range(1, depth + 1):
                    folders.add(prefix + "/".join(parts[:i]))
                if not recursive:
                    continue
            item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": entry.path}
            if entry.lfs:
                item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)}
            items.append(item)
        items += [{"type": "directory", "oid": git_blob_id(f.encode()), "size": 0, "path": f} for f in folders]
        items.sort(key=lambda i: i["path"])
        start = int(query.get("cursor", ["0"])[0] or 0)
        page = items[start : start + TREE_PAGE]
        headers = {}
        if start + TREE_PAGE < len(items):
            params = urllib.parse.urlencode(
                {"recursive": str(recursive).lower(), "expand": "false", "cursor": start + TREE_PAGE}
            )
            host = self.headers.get("Host") or "127.0.0.1"
            headers["Link"] = f'<http://{host}{urllib.parse.urlsplit(self.path).path}?{params}>; rel="next"'
        return self._json(200, page, headers)

    def hf_resolve(self, repo_id: str, revision: str, path: str) -> None:
        repo = self.hf_repo(repo_id)
        if repo is None:
            return None
        commit = repo.resolve(revision)
        if commit is None:
            return self.hf_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        entry = commit.files.get(path)
        if entry is None:
            return self.hf_error(404, "EntryNotFound", f"{path} does not exist on {commit.id}", commit.id)
        headers = {"X-Repo-Commit": commit.id}
        if entry.lfs:
            # The Hub answers an LFS file with a redirect to its CDN, the metadata on the redirect itself.
            location = self._cdn_location(repo_id, entry)
            headers |= {
                "Location": location,
                "X-Linked-Etag": f'"{entry.sha256}"',
                "X-Linked-Size": str(entry.size),
                "ETag": f'"{entry.oid}"',
            }
            return self._reply(302, b"", headers, "text/plain")
        return self._file(entry, headers | {"ETag": f'"{entry.blob_id}"'})

    # --- ModelScope

    def ms_ok(self, data: Any) -> None:
        self._json(
            200, {"Code": 200, "Data": data, "Message": "success", "RequestId": uuid.uuid4().hex, "Success": True}
        )

    def ms_error(self, status: int, message: str) -> None:
        body = {"Code": 10010205001, "Data": None, "Message": message, "RequestId": uuid.uuid4().hex, "Success": False}
        self._json(status, body)

    def ms_repo(self, repo_id: str) -> Repository | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self.ms_error(404, f"model {repo_id} not found")
            return None
        if repo.gated and self._token() != self.hub.token:
            self.ms_error(401 if self._token() is None else 403, f"no permission to model {repo_id}")
            return None
        return repo

    def modelscope(self, rest: str, query: Mapping[str, list[str]]) -> None:
        found = re.fullmatch(r"([^/]+/[^/]+)(?:/(repo/files|repo|revisions))?", rest)
        if not found:
            return self.ms_error(404, "not found")
        repo_id, what = found.groups()
        repo = self.ms_repo(repo_id)
        if repo is None:
            return None
        if what == "revisions":
            branches = [{"Revision": b, "CreatedAt": repo.commits[c].created_at} for b, c in repo.branches.items()]
            tags = [{"Revision": t, "CreatedAt": repo.commits[c].created_at} for t, c in repo.tags.items()]
            return self.ms_ok({"RevisionMap": {"Branches": branches, "Tags": tags}})
        revision = query.get("Revision", ["master"])[0]
        commit = repo.resolve(revision)
        if commit is None:
            return self.ms_error(404, f"revision {revision} of model {repo_id} not found")
        if what == "repo/files":
            return self.ms_files(repo, commit, query)
        if what == "repo":
            entry = commit.files.get(query.get("FilePath", [""])[0])
            if entry is None:
                return self.ms_error(404, f"file {query.get('FilePath', [''])[0]!r} not found in {repo_id}")
            if entry.lfs:
                return self._reply(302, b"", {"Location": self._cdn_location(repo_id, entry)}, "text/plain")
            return self._file(entry, {"ETag": f'"{entry.blob_id}"'})
        return self.ms_ok({"Name": repo_id.split("/")[1], "Path": repo_id.split("/")[0], "Revision": revision})

    def ms_files(self, repo: Repository, commit: Commit, query: Mapping[str, list[str]]) -> None:
        recursive = query.get("Recursive", ["False"])[0].lower() == "true"
        root = query.get("Root", [""])[0].strip("/")
        prefix = f"{root}/" if root else ""
        files: list[dict[str, Any]] = []
        folders: set[str] = set()
        for entry in commit.files.values():
            if not entry.path.startswith(prefix):
                continue
            rest = entry.path[len(prefix) :]
            if "/" in rest:
                folders.add(prefix + rest.split("/")[0])
                if not recursive:
                    continue
            files.append(
                {
                    "CommitId": entry.changed_in,
                    "CommitMessage": repo.commits[entry.changed_in].message,
                    "CommittedDate": repo.commits[entry.changed_in].created_at,
                    "CommitterName": "hub-standin",
                    "InCheck": False,
                    "IsLFS": entry.lfs,
                    "Mode": "33188",
                    "Name": entry.path.rsplit("/", 1)[-1],
                    "Path": entry.path,
                    "Revision": entry.changed_in,
                    "Sha256": entry.sha256,
                    "Size": entry.size,
                    "Type": "blob",
                }
            )
        files += [{"Name": f.rsplit("/", 1)[-1], "Path": f, "Type": "tree", "Size": 0} for f in sorted(folders)]
        return self.ms_ok({"Files": files, "LatestCommitter": {"CommitterName": "hub-standin"}})

    # --- control

    def control(self, path: str) -> None:
        if path == "/stand-in/requests" and self.command == "DELETE":
            with self.hub.lock:
                self.hub.requests.clear()
            return self._json(200, {"cleared": True})
        if path == "/stand-in/requests":
            with self.hub.lock:
                return self._json(200, list(self.hub.requests))
        if path == "/stand-in/models":
            models = {
                name: {
                    "branches": repo.branches,
                    "tags": repo.tags,
                    "commits": list(repo.commits),
                    "files": {
                        e.path: e.size
                        for e in repo.commits[repo.branches.get("main") or next(iter(repo.commits))].files.values()
                    },
                }
                for name, repo in self.hub.repos.items()
            }
            return self._json(200, models)
        if path == "/stand-in/advance" and self.command == "POST":
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            repo, branch = body.get("repo"), body.get("branch", "master")
            if repo not in self.hub.repos or branch not in self.hub.repos[repo].branches:
                return self._json(404, {"error": f"no branch {branch!r} of {repo!r}"})
            commit = self.hub.advance(repo, branch)
            return self._json(200, {"repo": repo, "branch": branch, "commit": commit.id})
        return self._json(404, {"error": "Not Found"})


class CdnHandler(_Handler):
    """The hubs' storage behind their redirects: objects by sha256, ranges, no token."""

    role = "cdn"

    def route(self, path: str, query: Mapping[str, list[str]]) -> None:
        found = re.fullmatch(r"/lfs/([0-9a-f]{64})", path)
        entry = self.hub.blobs.get(found.group(1)) if found else None
        if entry is None:
            return self._reply(404, b"NoSuchKey", kind="text/plain")
        return self._file(entry, {"ETag": f'"{entry.sha256}"', "X-Linked-ETag": f'"{entry.sha256}"'})


def origin(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class HubServer:
    """The hub and its CDN, each on a port of the same loopback address, serving on daemon threads."""

    def __init__(self, hub: Hub, host: str = "127.0.0.1", port: int = 0, cdn_port: int = 0, cdn_url: str | None = None):
        address = bind_address(host)
        self.hub = hub
        cdn = type("Cdn", (CdnHandler,), {"hub": hub, "cdn_port": 0, "cdn_url": None})
        self.cdn = http.server.ThreadingHTTPServer((address, cdn_port), cdn)
        handler = type("Hub", (HubHandler,), {"hub": hub, "cdn_port": self.cdn.server_address[1], "cdn_url": cdn_url})
        self.http = http.server.ThreadingHTTPServer((address, port), handler)
        for server in (self.http, self.cdn):
            server.daemon_threads = True
        self.threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.http.server_address[:2]
        return origin(str(host), int(port))

    @property
    def cdn_url(self) -> str:
        host, port = self.cdn.server_address[:2]
        return origin(str(host), int(port))

    def start(self) -> HubServer:
        for server in (self.http, self.cdn):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        for server in (self.http, self.cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build(models_dir: Path, specs: Iterable[ModelSpec], token: str | None = None) -> Hub:
    """Generate the specs' repositories under models_dir and add what was already there."""
    models_dir.mkdir(parents=True, exist_ok=True)
    generated = {spec.repo: generate(spec, models_dir) for spec in specs}
    return Hub(generated | load_models_dir(models_dir, generated), token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.simulation.standins.hub", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (0.0.0.0: SGLANG_STANDIN_POD_IP)"
    )
    parser.add_argument("--port", type=int, default=8090, help="the hubs' API and file port")
    parser.add_argument("--cdn-port", type=int, default=0, help="the storage the LFS redirects point at (0: any free)")
    parser.add_argument(
        "--cdn-url", help="base URL of the storage in the redirects (default: the request's host, --cdn-port)"
    )
    parser.add_argument("--models-dir", type=Path, required=True, help="where models are generated and served from")
    parser.add_argument("--model", action="append", default=[], help="a model spec: REPO[@COMMIT][,key=value...]")
    parser.add_argument("--stack-file", type=Path, action="append", default=[], help="serve the models of a stack file")
    parser.add_argument("--token", default=os.environ.get("HUB_STANDIN_TOKEN"), help="the token gated models want")
    args = parser.parse_args(argv)
    try:
        specs = [parse_spec(s) for s in args.model]
        for stack in args.stack_file:
            import yaml

            raw = (yaml.safe_load(stack.read_text()) or {}).get("config") or {}
            values = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("sglang-platform:")}
            specs += [s for s in specs_for_stack(values) if s.repo not in {x.repo for x in specs}]
    except (ValueError, OSError) as error:
        parser.error(str(error))
    hub = build(args.models_dir, specs, args.token)
    if not hub.repos:
        parser.error(
            f"nothing to serve: give --model or --stack-file, or put owner/name directories in {args.models_dir}"
        )
    try:
        server = HubServer(hub, args.host, args.port, args.cdn_port, args.cdn_url).start()
    except OSError as error:  # NotLoopbackError, or the port is taken
        parser.error(str(error))
    for name, repo in sorted(hub.repos.items()):
        refs = ", ".join(f"{b}={c[:12]}" for b, c in sorted({**repo.branches, **repo.tags}.items()))
        log(f"{name}: {len(next(iter(repo.commits.values())).files)} files, {refs}")
    log(f"serving on {server.url} (HF_ENDPOINT / MODELSCOPE_ENDPOINT), LFS storage on {server.cdn_url}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
