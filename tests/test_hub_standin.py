"""The model hub stand-in (tools/simulation/standins/hub.py) against the real clients the platform runs: the
huggingface_hub and modelscope releases the download script pins (requirements-dev.txt installs them), each in a
process of its own with only the stand-in as its hub, and the platform's own download_model.py and config.json
read. Everything listens on 127.0.0.1; the clients' proxies point at a local trap that records any attempt to
reach another host, and the module fails if one was made."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, stack_values, unavailable

from sglang_platform.config.model_cache import ModelDownload
from sglang_platform.facts import quantization
from sglang_platform.live.config_json import Endpoints, fetch_config_json
from sglang_platform.rules import quantization as rules_quantization
from tools.simulation.standins.hub import EPOCH, Hub, HubServer, build, parse_spec, specs_for_stack

SCRIPT = ROOT / "pod_scripts" / "download_model.py"
QWEN = "Qwen/Qwen2.5-1.5B-Instruct"
QWEN_COMMIT = "989aa7980e4cf806f80c7fef2b1adb7bc71aa306"  # what Pulumi.dev.yaml pins
INT8 = "meituan/DeepSeek-R1-Block-INT8"
GATED = "team/gated-model"
MANY = "team/many-files"
TOKEN = "hf_standin_test_token"


class Trap:
    """A proxy that answers nothing: a client that tries any host but the stand-in (its proxy settings send
    everything else here) is recorded, and the connection closed."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.seen: list[str] = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace"))
                except OSError:
                    self.seen.append("(nothing sent)")

    def close(self) -> None:
        self.sock.close()


@dataclass
class Served:
    server: HubServer
    hub: Hub
    models: Path
    trap: Trap

    @property
    def url(self) -> str:
        return self.server.url

    def requests(self, since: int = 0) -> list[dict]:
        with self.hub.lock:
            return list(self.hub.requests[since:])

    def mark(self) -> int:
        with self.hub.lock:
            return len(self.hub.requests)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    models = tmp_path_factory.mktemp("hub") / "models"
    # A repository put there by hand, served as it is: more files than one page of Hugging Face's tree listing.
    hand = models / MANY
    (hand / "extra").mkdir(parents=True)
    (hand / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 12}')
    (hand / "model.safetensors").write_bytes(b"\0" * 64)
    for i in range(1001):
        (hand / "extra" / f"{i:04d}.txt").write_text(str(i))
    specs = [parse_spec(f"{QWEN}@{QWEN_COMMIT}"), parse_spec(f"{INT8},shards=3"), parse_spec(f"{GATED},gated")]
    hub = build(models, specs, token=TOKEN)
    trap = Trap()
    with HubServer(hub) as server:
        yield Served(server, hub, models, trap)
    trap.close()
    assert trap.seen == [], f"a client tried to reach another host: {trap.seen}"


def client_env(served: Served, home: Path, **extra: str) -> dict[str, str]:
    """What a download pod's client sees: the stand-in as its hub (the clients' own settings), a HOME of its own,
    and every other host behind the trap."""
    proxies = {k: served.trap.url for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")}
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HF_ENDPOINT": served.url,
        "MODELSCOPE_ENDPOINT": served.url,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        # pip, should anything call it: a closed port here, never an index.
        "PIP_INDEX_URL": served.trap.url + "/simple",
        "PIP_CONFIG_FILE": "/dev/null",
        **proxies,
        **extra,
    }


def run_client(served: Served, tmp_path: Path, code: str, **extra: str) -> subprocess.CompletedProcess:
    """Python code in a fresh process (huggingface_hub reads HF_ENDPOINT when it is imported)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=client_env(served, tmp_path / "home", **extra),
        capture_output=True,
        text=True,
        timeout=180,
    )


def last_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tree(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file, the clients' own bookkeeping left out."""
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
        and p.relative_to(directory).parts[0] not in (".cache", "._____temp", ".msc", ".mv", ".mdl")
        and p.name != ".hub-standin.json"
    }


# --- Hugging Face, as huggingface_hub 2.4.0 calls it ----------------------------------------------------


def test_snapshot_download_of_a_pinned_commit(served, tmp_path):
    mark = served.mark()
    out = tmp_path / "qwen"
    last_json(
        run_client(
            served,
            tmp_path,
            "import json, huggingface_hub as h; "
            f"h.snapshot_download(repo_id={QWEN!r}, revision={QWEN_COMMIT!r}, local_dir={str(out)!r}, max_workers=4); "
            "print(json.dumps('ok'))",
        )
    )
    assert tree(out) == tree(served.models / QWEN)
    asked = served.requests(mark)
    # A commit needs no resolving: the client lists the tree at it, then fetches each file.
    assert [(r["method"], r["path"]) for r in asked if "/api/" in r["path"]] == [
        ("GET", f"/api/models/{QWEN}/tree/{QWEN_COMMIT}")
    ]
    lfs = [r for r in asked if r["path"].endswith(".safetensors")]
    assert sorted((r["method"], r["status"]) for r in lfs) == [("HEAD", 302), ("HEAD", 302)]
    cdn = [r for r in asked if r["server"] == "cdn"]
    assert len(cdn) == 2 and {r["status"] for r in cdn} == {200}


def test_model_info_resolves_branches_and_lists_sizes(served, tmp_path):
    info = last_json(
        run_client(
            served,
            tmp_path,
            "import json, huggingface_hub as h; api = h.HfApi(); "
            f"i = api.model_info({QWEN!r}, revision='main', files_metadata=True); "
            f"m = api.repo_info({QWEN!r}, revision='master'); "
            "print(json.dumps({'sha': i.sha, 'master': m.sha, "
            "'files': {s.rfilename: [s.size, s.lfs.sha256 if s.lfs else None] for s in i.siblings}}))",
        )
    )
    assert info["sha"] == info["master"] == QWEN_COMMIT
    on_disk = {p: (served.models / QWEN / p).read_bytes() for p in tree(served.models / QWEN)}
    assert info["files"] == {
        p: [len(data), hashlib.sha256(data).hexdigest() if p.endswith(".safetensors") else None]
        for p, data in on_disk.items()
    }


def test_errors_are_the_hubs_and_a_gated_repository_wants_the_token(served, tmp_path):
    code = (
        "import json, huggingface_hub as h\n"
        "from huggingface_hub import errors\n"
        "out = {}\n"
        "for name, call in [\n"
        f"    ('repo', lambda: h.HfApi().model_info('nobody/nothing')),\n"
        f"    ('revision', lambda: h.HfApi().model_info({QWEN!r}, revision='v9')),\n"
        f"    ('gated', lambda: h.hf_hub_download({GATED!r}, 'config.json', local_dir={str(tmp_path / 'g1')!r})),\n"
        "]:\n"
        "    try:\n"
        "        call(); out[name] = 'ok'\n"
        "    except Exception as e:\n"
        "        out[name] = type(e).__name__\n"
        "print(json.dumps(out))\n"
    )
    assert last_json(run_client(served, tmp_path, code)) == {
        "repo": "RepositoryNotFoundError",
        "revision": "RevisionNotFoundError",
        "gated": "GatedRepoError",
    }
    mark = served.mark()
    out = tmp_path / "gated"
    last_json(
        run_client(
            served,
            tmp_path,
            f"import json, huggingface_hub as h; h.snapshot_download({GATED!r}, local_dir={str(out)!r}); "
            "print(json.dumps('ok'))",
            HF_TOKEN=TOKEN,
        )
    )
    assert tree(out) == tree(served.models / GATED)
    asked = served.requests(mark)
    # The token goes to the hub, and not on to its storage: the redirect leaves the hub's origin.
    assert {r["token"] for r in asked if r["server"] == "hub"} == {TOKEN}
    assert [r["token"] for r in asked if r["server"] == "cdn"] == [None, None]


def test_the_tree_listing_pages_as_the_hub_does(served, tmp_path):
    mark = served.mark()
    listed = last_json(
        run_client(
            served,
            tmp_path,
            "import json, huggingface_hub as h; "
            f"print(json.dumps(sorted(f.path for f in h.HfApi().list_repo_tree({MANY!r}, recursive=True))))",
        )
    )
    assert len(listed) == 1001 + 2 + 1  # the files and the one directory
    assert "extra/1000.txt" in listed and "extra" in listed
    pages = [r for r in served.requests(mark) if "/tree/" in r["path"]]
    assert [("cursor=1000" in r["query"]) for r in pages] == [False, True]


def test_resolve_and_storage_headers(served):
    entry = served.hub.repos[INT8].resolve("master").files["model-00002-of-00003.safetensors"]
    request = urllib.request.Request(
        f"{served.url}/{INT8}/resolve/master/model-00002-of-00003.safetensors", method="HEAD"
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.build_opener(NoRedirect).open(request, timeout=10)
    headers = info.value.headers
    commit = served.hub.repos[INT8].branches["master"]
    assert info.value.code == 302
    assert (headers["X-Repo-Commit"], headers["X-Linked-Etag"], headers["X-Linked-Size"]) == (
        commit,
        f'"{entry.sha256}"',
        str(entry.size),
    )
    assert headers["Location"].startswith(served.server.cdn_url + f"/lfs/{entry.sha256}?")
    ranged = urllib.request.Request(headers["Location"], headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(ranged, timeout=10) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 100-199/{entry.size}"
        assert response.read() == entry.source.read_bytes()[100:200]
    with pytest.raises(urllib.error.HTTPError) as beyond:
        urllib.request.urlopen(
            urllib.request.Request(headers["Location"], headers={"Range": f"bytes={entry.size}-"}), timeout=10
        )
    assert beyond.value.code == 416
    small = served.hub.repos[INT8].resolve("master").files["config.json"]
    with urllib.request.urlopen(f"{served.url}/{INT8}/resolve/{commit}/config.json", timeout=10) as response:
        assert response.headers["ETag"] == f'"{small.blob_id}"' and response.headers["X-Repo-Commit"] == commit


# --- ModelScope, as modelscope 1.40.2 (modelscope-hub 0.5.1) calls it -------------------------------------


def test_modelscope_snapshot_download_of_a_branch(served, tmp_path):
    mark = served.mark()
    out = tmp_path / "int8"
    result = last_json(
        run_client(
            served,
            tmp_path,
            "import json, modelscope\n"
            "from modelscope.hub.api import HubApi\n"
            f"modelscope.snapshot_download(model_id={INT8!r}, revision='master', local_dir={str(out)!r})\n"
            "api = HubApi()\n"
            f"detail = api.get_valid_revision_detail({INT8!r}, revision='master')\n"
            f"files = api.get_model_files({INT8!r}, revision='master', recursive=True)\n"
            "try:\n"
            "    api.get_model_files('nobody/nothing', revision='master'); missing = 'ok'\n"
            "except Exception as e:\n"
            "    missing = type(e).__name__\n"
            "print(json.dumps({'detail': detail, 'files': {f['Path']: f['Size'] for f in files}, 'missing': missing}))",
        )
    )
    assert tree(out) == tree(served.models / INT8)
    # The revisions endpoint names branches and tags, not commits (the file list carries those).
    assert result["detail"] == {"Revision": "master", "CreatedAt": EPOCH}
    assert result["files"] == {p: (served.models / INT8 / p).stat().st_size for p in tree(served.models / INT8)}
    assert result["missing"] != "ok"
    asked = served.requests(mark)
    # The shards came from the storage the redirects named, and the client checked them against the listing's
    # Sha256 (it raises FileIntegrityError otherwise).
    assert sorted(r["path"].rsplit("/", 1)[1] for r in asked if r["server"] == "cdn") == sorted(
        e.sha256 for e in served.hub.repos[INT8].resolve("master").files.values() if e.lfs
    )
    assert ("GET", "/api/v1/repos/internalAccelerationInfo") in [(r["method"], r["path"]) for r in asked]


def test_the_modelscope_file_list_names_each_files_commit(served):
    with urllib.request.urlopen(
        f"{served.url}/api/v1/models/{INT8}/repo/files?Revision=master&Recursive=True", timeout=10
    ) as response:
        body = json.loads(response.read())
    assert (body["Code"], body["Success"]) == (200, True)
    commit = served.hub.repos[INT8].branches["master"]
    files = {f["Path"]: f for f in body["Data"]["Files"]}
    data = (served.models / INT8 / "config.json").read_bytes()
    assert {k: files["config.json"][k] for k in ("Type", "Size", "Sha256", "Revision", "IsLFS")} == {
        "Type": "blob",
        "Size": len(data),
        "Sha256": hashlib.sha256(data).hexdigest(),
        "Revision": commit,
        "IsLFS": False,
    }


# --- the platform's own readers and script ----------------------------------------------------------------


def test_the_preview_reads_config_json_from_the_standin(served):
    """live/config_json.py at `pulumi preview`, with the stand-in as the stack's hub endpoint."""
    hubs = Endpoints(served.url, served.url)
    int8 = fetch_config_json("modelscope", ModelDownload(repo=INT8, revision="master"), endpoints=hubs, offline=False)
    assert quantization.detect(int8.config or {}).scheme == "int8-block"
    model = rules_quantization.model_from_config(INT8, int8.config or {})
    assert model is not None and (model.num_attention_heads, model.mla_kv_width, model.moe) == (128, 576, True)
    qwen = fetch_config_json(
        "huggingface", ModelDownload(repo=QWEN, revision=QWEN_COMMIT), endpoints=hubs, offline=False
    )
    assert quantization.detect(qwen.config or {}).scheme == "none"
    assert (qwen.config or {})["num_key_value_heads"] == 2
    missing = fetch_config_json(
        "huggingface", ModelDownload(repo=QWEN, revision="b" * 40), endpoints=hubs, offline=False
    )
    assert missing.loc == ("model", "download", "revision")


def script_env(served: Served, tmp_path: Path, model_dir: Path, source: str, repo: str, revision: str, **extra):
    identity = {"source": source, "repo": repo, "revision": revision}
    requirement = {"huggingface": "huggingface_hub==2.4.0", "modelscope": "modelscope==1.40.2"}[source]
    return client_env(
        served,
        tmp_path / "home",
        MODEL_DIR=str(model_dir),
        MODEL_SOURCE=source,
        MODEL_IDENTITY=json.dumps(identity, sort_keys=True),
        MODEL_REPO=repo,
        MODEL_REVISION=revision,
        MAX_WORKERS="4",
        DOWNLOAD_REQUIREMENT=requirement,
        DEPS_DIR=str(tmp_path / "deps"),
        **extra,
    )


def script(mode: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), mode], env=env, capture_output=True, text=True, timeout=180)


def test_the_download_job_fills_a_claim_from_the_standin(served, tmp_path):
    """download_model.py download, as the dev stack's Job runs it: the pinned commit from Hugging Face."""
    model_dir = tmp_path / "models" / "Qwen2.5-1.5B-Instruct"
    env = script_env(served, tmp_path, model_dir, "huggingface", QWEN, QWEN_COMMIT)
    first = script("download", env)
    assert first.returncode == 0, first.stdout + first.stderr
    # The venv has the pinned client: it is used, nothing is installed.
    assert " using huggingface_hub 2.4.0 from the image\n" in first.stdout
    assert not (tmp_path / "deps").exists()
    marker = json.loads((model_dir / ".sglang-platform-complete.json").read_text())
    assert (marker["commit"], marker["files"]) == (QWEN_COMMIT, len(tree(served.models / QWEN)))
    assert {k: v for k, v in tree(model_dir).items() if not k.startswith(".sglang")} == tree(served.models / QWEN)
    again = script("download", env)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    gate = script("wait", env)
    assert gate.returncode == 0 and "weights complete" in gate.stdout


def test_a_gated_model_downloads_with_the_token_and_is_refused_without(served, tmp_path):
    model_dir = tmp_path / "gated"
    commit = served.hub.repos[GATED].branches["main"]
    refused = script("download", script_env(served, tmp_path, model_dir, "huggingface", GATED, commit))
    # huggingface_hub only warns (the hub's own message) and returns the directory as it was; the script's
    # verification refuses it and points at that warning.
    assert refused.returncode == 1
    assert "Access to model team/gated-model is restricted." in refused.stderr
    assert "has no config.json after the download (a hub client that cannot reach the repository" in refused.stdout
    assert not (model_dir / ".sglang-platform-complete.json").exists()
    done = script("download", script_env(served, tmp_path, model_dir, "huggingface", GATED, commit, HF_TOKEN=TOKEN))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_stager_stages_a_modelscope_branch_from_the_standin(served, tmp_path):
    """download_model.py stage, as prod's DaemonSet runs it: ModelScope's master into a revision directory beside
    the model path, its progress total from the hub's file list."""
    model_dir = tmp_path / "node" / "DeepSeek-R1-Block-INT8"
    env = script_env(
        served,
        tmp_path,
        model_dir,
        "modelscope",
        INT8,
        "master",
        STAGE_GROUP="deepseek-r1",
        STAGE_ONCE="1",
        METRICS_ADDRESS="127.0.0.1",
        METRICS_PORT="0",
    )
    staged = script("stage", env)
    assert staged.returncode == 0, staged.stdout + staged.stderr
    files = len(tree(served.models / INT8))
    assert f", {files} of {files} files, " in staged.stdout
    assert model_dir.is_symlink() and (model_dir / "model.safetensors.index.json").is_file()
    # ModelScope's revisions endpoint names no commit, so a branch's commit stays unknown (docs/model-weights.md).
    assert "in place, commit unknown" in staged.stdout
    assert json.loads((model_dir / ".sglang-platform-complete.json").read_text())["commit"] is None


def test_a_moving_hugging_face_branch_is_recorded_per_node(served, tmp_path):
    """Two nodes staging main before and after it moved hold different commits, and their markers say so."""
    env_a = script_env(
        served,
        tmp_path,
        tmp_path / "node-a" / "Qwen",
        "huggingface",
        QWEN,
        "main",
        STAGE_ONCE="1",
        METRICS_ADDRESS="127.0.0.1",
        METRICS_PORT="0",
    )
    first = script("stage", env_a)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"in place, commit {QWEN_COMMIT}" in first.stdout
    moved = urllib.request.Request(
        f"{served.url}/stand-in/advance", data=json.dumps({"repo": QWEN, "branch": "main"}).encode(), method="POST"
    )
    with urllib.request.urlopen(moved, timeout=10) as response:
        head = json.loads(response.read())["commit"]
    try:
        env_b = env_a | {"MODEL_DIR": str(tmp_path / "node-b" / "Qwen")}
        second = script("stage", env_b)
        assert second.returncode == 0, second.stdout + second.stderr
        assert f"in place, commit {head}" in second.stdout and head != QWEN_COMMIT
        assert (tmp_path / "node-b" / "Qwen" / "README.md").read_text() != (
            tmp_path / "node-a" / "Qwen" / "README.md"
        ).read_text()
    finally:
        # Later tests see main where the spec put it.
        served.hub.repos[QWEN].branches["main"] = QWEN_COMMIT


# --- the generated models ----------------------------------------------------------------------------------


def test_generated_weights_are_safetensors_the_index_names(served):
    repo = served.models / INT8
    index = json.loads((repo / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in repo.glob("*.safetensors"))
    assert (
        sorted(set(index["weight_map"].values()))
        == shards
        == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    )
    total = 0
    for shard in shards:
        data = (repo / shard).read_bytes()
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        assert all(index["weight_map"][name] == shard for name in tensors)
        end = max(v["data_offsets"][1] for v in tensors.values())
        assert len(data) == 8 + length + end and length % 8 == 0
        total += end
    assert index["metadata"]["total_size"] == total


def test_the_same_spec_makes_the_same_model(tmp_path):
    one = build(tmp_path / "a", [parse_spec(f"{INT8},shards=2")]).repos[INT8]
    two = build(tmp_path / "b", [parse_spec(f"{INT8},shards=2")]).repos[INT8]
    assert one.branches == two.branches and one.branches["master"] == one.branches["main"]
    assert {p: e.sha256 for p, e in one.resolve("master").files.items()} == {  # type: ignore[union-attr]
        p: e.sha256
        for p, e in two.resolve("master").files.items()  # type: ignore[union-attr]
    }


def test_specs_and_their_errors():
    assert parse_spec(f"{INT8},shards=3").quant == "int8-block"  # the platform's known model
    assert parse_spec("deepseek-ai/DeepSeek-R1").quant == "fp8-block"
    assert parse_spec("team/Llama-Tiny").arch == "qwen2"
    with pytest.raises(ValueError) as info:
        parse_spec(f"{QWEN},quant=fp4")
    assert str(info.value) == (
        f"model spec '{QWEN},quant=fp4': 'quant=fp4' is not one of arch=qwen2|deepseek-v3, "
        "quant=none|fp8-block|int8-block|w8a8-int8, shards=1..64, shard-kib=N, branches=a+b, tags=a+b, gated"
    )
    with pytest.raises(ValueError, match="is not a 40-character commit id"):
        parse_spec(f"{QWEN}@main")


def test_the_committed_stacks_models_are_served_at_the_revisions_they_pin():
    (dev,) = specs_for_stack(stack_values("dev"))
    assert (dev.repo, dev.commit, dev.quant) == (QWEN, QWEN_COMMIT, "none")
    (prod,) = specs_for_stack(stack_values("prod"))
    assert (prod.repo, prod.commit, prod.quant, "master" in prod.branches) == (INT8, None, "int8-block", True)
    # A declared quantization is what the served config.json must say, or the preview refuses the stack.
    declared = json.loads(json.dumps(stack_values("prod")))
    declared["inferenceGroups"][0]["model"]["quantization"] = "w8a8-int8"
    assert [s.quant for s in specs_for_stack(declared)] == ["w8a8-int8"]
    # The PD example names only its preset: the preset's model, at the commit the preset pins.
    (pd,) = specs_for_stack(stack_values("pd-h200"))
    assert (pd.repo, pd.commit, pd.quant) == (
        "deepseek-ai/DeepSeek-R1",
        "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad",
        "fp8-block",
    )


def test_the_tokenizer_loads_with_transformers(served):
    """What bench_serving does with --tokenizer: AutoTokenizer from the model directory, offline."""
    python = os.environ.get("SGLANG_BENCH_PYTHON") or str(ROOT / ".ci" / ".bench-venv" / "bin" / "python")
    if not Path(python).exists():
        unavailable(f"transformers is not installed: `bash .ci/run` puts it into {Path(python).parent.parent}")
    code = (
        "import json, sys; from transformers import AutoTokenizer; "
        "t = AutoTokenizer.from_pretrained(sys.argv[1]); "
        "ids = t.encode('the time of one year and'); "
        "print(json.dumps({'ids': ids, 'text': t.decode(ids), 'unk': t.unk_token_id, 'eos': t.eos_token}))"
    )
    proc = subprocess.run(
        [python, "-c", code, str(served.models / QWEN)],
        env={"PATH": os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = last_json(proc)
    assert len(out["ids"]) == 6 and out["unk"] not in out["ids"]
    assert out["text"] == "the time of one year and" and out["eos"] == "<|im_end|>"


# --- the command line --------------------------------------------------------------------------------------


def test_the_command_line_serves_a_stacks_models(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.simulation.standins.hub",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--models-dir",
            str(tmp_path / "models"),
            "--stack-file",
            str(ROOT / "Pulumi.dev.yaml"),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        line = ""
        while "serving on" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, line
            line = proc.stderr.readline()
        url = line.split("serving on ", 1)[1].split()[0]
        with urllib.request.urlopen(f"{url}/stand-in/models", timeout=10) as response:
            models = json.loads(response.read())
        assert list(models) == [QWEN] and models[QWEN]["branches"]["main"] == QWEN_COMMIT
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.simulation.standins.hub",
            "--host",
            "192.0.2.1",
            "--models-dir",
            str(tmp_path / "m"),
            "--model",
            QWEN,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "refusing to bind 192.0.2.1: it binds loopback addresses only" in refused.stderr


@pytest.mark.parametrize("quant", ["none", "fp8-block", "int8-block", "w8a8-int8"])
@pytest.mark.parametrize("arch", ["qwen2", "deepseek-v3"])
def test_each_quantization_reads_back_as_itself(arch, quant):
    """The preview's reader (facts.quantization.detect) finds in the generated config.json what the spec asked."""
    from tools.simulation.standins.hub import model_config

    config = model_config(parse_spec(f"team/model,arch={arch},quant={quant}"))
    assert quantization.detect(config).scheme == quant
    assert config["architectures"] == ["DeepseekV3ForCausalLM" if arch == "deepseek-v3" else "Qwen2ForCausalLM"]
