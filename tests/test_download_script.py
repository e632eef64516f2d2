"""pod_scripts/download_model.py, the script the download Job, the stagers and the gates run, against a
local directory: fake Hugging Face / ModelScope clients, S3 through moto, and the script run as a process
against a local moto server (a custom endpoint). No network."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from typing import Any

import boto3
import pytest
from conftest import ROOT
from moto import mock_aws

SCRIPT = ROOT / "pod_scripts" / "download_model.py"
spec = importlib.util.spec_from_file_location("download_model", SCRIPT)
assert spec is not None and spec.loader is not None
dm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dm)

REVISION = "989aa7980e4cf806f80c7fef2b1adb7bc71aa306"
INDEX = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}


def hf_env(model_dir, revision=REVISION, **extra) -> dict:
    identity = {"source": "huggingface", "repo": "Qwen/Qwen2.5-1.5B-Instruct", "revision": revision}
    return {
        "MODEL_DIR": str(model_dir),
        "MODEL_SOURCE": "huggingface",
        "MODEL_IDENTITY": json.dumps(identity),
        "MODEL_REPO": "Qwen/Qwen2.5-1.5B-Instruct",
        "MODEL_REVISION": revision,
        "MAX_WORKERS": "4",
    } | extra


class FakeHub:
    """Stands in for huggingface_hub / modelscope: records calls, writes what the repository holds."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.calls: list[dict] = []

    def snapshot_download(self, **kwargs):
        self.calls.append(kwargs)
        for name, body in self.files.items():
            path = dm.Path(kwargs["local_dir"]) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
        # What huggingface_hub leaves in a local_dir; not part of the model.
        (dm.Path(kwargs["local_dir"]) / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        return kwargs["local_dir"]


@pytest.fixture
def hub(monkeypatch):
    fake = FakeHub({"config.json": b"{}", "model.safetensors": b"0" * 100, "tokenizer.json": b"{}"})
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=fake.snapshot_download))
    return fake


def test_huggingface_download_writes_a_verified_marker(tmp_path, hub):
    model_dir = tmp_path / "models" / "Qwen2.5-1.5B-Instruct"
    marker = dm.download(hf_env(model_dir, HF_TOKEN="hf_secret"))
    assert hub.calls == [
        {
            "repo_id": "Qwen/Qwen2.5-1.5B-Instruct",
            "revision": REVISION,
            "local_dir": str(model_dir),
            "token": "hf_secret",
            "max_workers": 4,
        }
    ]
    on_disk = json.loads((model_dir / dm.MARKER).read_text())
    assert on_disk == marker
    assert {k: v for k, v in on_disk.items() if k != "completedAt"} == {
        "source": "huggingface",
        "repo": "Qwen/Qwen2.5-1.5B-Instruct",
        "revision": REVISION,
        "files": 3,
        "bytes": 104,
        # A commit names itself: no hub call to resolve it.
        "commit": REVISION,
    }


def test_a_complete_download_is_not_fetched_again(tmp_path, hub):
    dm.download(hf_env(tmp_path))
    dm.download(hf_env(tmp_path))
    assert len(hub.calls) == 1


def test_a_changed_revision_is_fetched_again_and_the_gate_closes_first(tmp_path, hub):
    dm.download(hf_env(tmp_path))
    seen_marker_during_fetch = []
    original = hub.snapshot_download

    def fetch(**kwargs):
        seen_marker_during_fetch.append((tmp_path / dm.MARKER).exists())
        return original(**kwargs)

    hub.snapshot_download = fetch
    setattr(sys.modules["huggingface_hub"], "snapshot_download", fetch)  # noqa: B010 (mypy rejects assigning to the typed module)
    new = "a" * 40
    marker = dm.download(hf_env(tmp_path, revision=new))
    assert hub.calls[-1]["revision"] == new and len(hub.calls) == 2
    assert seen_marker_during_fetch == [False]
    assert marker["revision"] == new


def test_an_incomplete_download_writes_no_marker(tmp_path, monkeypatch):
    fake = FakeHub(
        {"config.json": b"{}", "model-00001-of-00002.safetensors": b"0", INDEX_NAME: json.dumps(INDEX).encode()}
    )
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=fake.snapshot_download))
    with pytest.raises(dm.DownloadError, match=r"1 shards named in model.safetensors.index.json are missing"):
        dm.download(hf_env(tmp_path))
    assert not (tmp_path / dm.MARKER).exists()


INDEX_NAME = "model.safetensors.index.json"


def test_no_config_json_is_not_a_model(tmp_path, monkeypatch):
    fake = FakeHub({"model.safetensors": b"0"})
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=fake.snapshot_download))
    with pytest.raises(dm.DownloadError, match=r"has no config\.json"):
        dm.download(hf_env(tmp_path))
    assert not (tmp_path / dm.MARKER).exists()


def test_modelscope_download(tmp_path, monkeypatch):
    fake = FakeHub({"config.json": b"{}", "model.safetensors": b"00"})
    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=fake.snapshot_download))
    identity = {"source": "modelscope", "repo": "deepseek-ai/DeepSeek-R1", "revision": "master"}
    env = {
        "MODEL_DIR": str(tmp_path),
        "MODEL_IDENTITY": json.dumps(identity),
        "MODEL_REPO": "deepseek-ai/DeepSeek-R1",
        "MODEL_REVISION": "master",
    }
    marker = dm.download(env)
    assert fake.calls == [
        {"model_id": "deepseek-ai/DeepSeek-R1", "revision": "master", "local_dir": str(tmp_path), "max_workers": 8}
    ]
    dm.download(env | {"MODELSCOPE_API_TOKEN": "ms-token", "MODEL_IDENTITY": json.dumps(identity | {"revision": "v2"})})
    assert fake.calls[-1]["token"] == "ms-token"
    assert (marker["files"], marker["bytes"]) == (2, 4)


def test_a_missing_library_without_a_pinned_requirement_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(dm.DownloadError, match="huggingface_hub is missing and DOWNLOAD_REQUIREMENT is not set"):
        dm.download(hf_env(tmp_path))


def test_an_importable_client_is_used_as_it_is_and_its_version_logged(tmp_path, monkeypatch, capsys):
    """What the sandbox's prepared image and an air-gapped cluster's image rely on: nothing is installed when the
    module imports, and the log says which version ran (here the one requirements-dev.txt installs)."""
    from importlib.metadata import version

    monkeypatch.setattr(dm, "_REPORTED", set())
    monkeypatch.setattr(dm.subprocess, "run", lambda *a, **k: pytest.fail(f"pip was run: {a}"))
    have = version("huggingface_hub")
    env = {"DOWNLOAD_REQUIREMENT": "huggingface_hub==0.0.1", "DEPS_DIR": str(tmp_path / "deps")}
    assert dm.require("huggingface_hub", env).__name__ == "huggingface_hub"
    dm.require("huggingface_hub", env)
    assert (
        capsys.readouterr()
        .out.splitlines()[0]
        .endswith(f" using huggingface_hub {have} from the image, not the pinned 0.0.1")
    )
    assert not (tmp_path / "deps").exists()
    dm.require("huggingface_hub", env | {"DOWNLOAD_REQUIREMENT": f"huggingface_hub=={have}"})
    assert capsys.readouterr().out == ""  # logged once per module


def test_a_client_pip_cannot_install_says_what_to_do(tmp_path, monkeypatch):
    """No PyPI (an air-gapped cluster, the sandbox): pip, pointed at a closed port on 127.0.0.1, fails, and the
    error names the image setting instead of ending in a traceback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    for key, value in {
        "PIP_INDEX_URL": f"http://127.0.0.1:{closed}/simple",
        "PIP_CONFIG_FILE": "/dev/null",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(sys.modules, "sglang_platform_no_such_client", None)  # import fails
    env = {"DOWNLOAD_REQUIREMENT": "sglang-platform-no-such-client==1.0", "DEPS_DIR": str(tmp_path / "deps")}
    with pytest.raises(dm.DownloadError) as info:
        dm.require("sglang_platform_no_such_client", env)
    message = str(info.value)
    assert message.startswith(
        "python module sglang_platform_no_such_client is not in the image and `pip install "
        "sglang-platform-no-such-client==1.0` failed (Command "
    )
    assert message.endswith(
        "without access to PyPI, use a downloader image that has it installed (versions.modelDownloaderImage)"
    )


def test_a_client_pinned_with_what_it_leaves_open_installs_both(tmp_path, monkeypatch):
    """modelscope requires modelscope-hub unpinned: DOWNLOAD_REQUIREMENT carries both pins, and pip gets each as its
    own argument (one argument "a==1 b==2" is an invalid requirement)."""
    calls: list[list[str]] = []

    def run(cmd, check):
        calls.append(cmd)
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(dm.subprocess, "run", run)
    monkeypatch.setitem(sys.modules, "sglang_platform_no_such_client", None)
    env = {"DOWNLOAD_REQUIREMENT": "sglang-platform-no-such-client==1.0 its-hub==0.5.1", "DEPS_DIR": str(tmp_path)}
    with pytest.raises(dm.DownloadError) as info:
        dm.require("sglang_platform_no_such_client", env)
    assert "`pip install sglang-platform-no-such-client==1.0 its-hub==0.5.1` failed" in str(info.value)
    assert calls[0][-3:] == [str(tmp_path), "sglang-platform-no-such-client==1.0", "its-hub==0.5.1"]


def test_wait_holds_until_the_matching_marker_exists(tmp_path, hub):
    env = hf_env(tmp_path)
    sleeps: list[float] = []
    assert dm.wait(env, sleep=sleeps.append, max_polls=3) is False
    assert sleeps == [15.0, 15.0, 15.0]
    dm.download(hf_env(tmp_path, revision="b" * 40))
    assert dm.wait(env, sleep=sleeps.append, max_polls=2) is False  # another revision's weights
    dm.download(env)
    assert dm.wait(env, sleep=sleeps.append, max_polls=0) is True


# --- S3 -------------------------------------------------------------------------------------------------


def s3_env(model_dir, endpoint: str | None = None) -> dict:
    identity = {"source": "s3", "bucket": "weights", "prefix": "r1", "endpoint": endpoint or "", "revision": ""}
    env = {
        "MODEL_DIR": str(model_dir),
        "MODEL_IDENTITY": json.dumps(identity),
        "S3_BUCKET": "weights",
        "S3_PREFIX": "r1",
        "AWS_REGION": "us-east-1",
    }
    return env | ({"S3_ENDPOINT": endpoint} if endpoint else {})


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def put(client, objects: dict[str, bytes]) -> None:
    client.create_bucket(Bucket="weights")
    for key, body in objects.items():
        client.put_object(Bucket="weights", Key=key, Body=body)


S3_MODEL = {
    "r1/config.json": b"{}",
    "r1/model-00001-of-00002.safetensors": b"0" * 300,
    "r1/model-00002-of-00002.safetensors": b"1" * 200,
    f"r1/{INDEX_NAME}": json.dumps(INDEX).encode(),
    "r1/original/notes.txt": b"nested",
    "r2/config.json": b"not ours",
}


@mock_aws
def test_s3_download_copies_the_prefix_and_resumes(tmp_path, aws):
    client = boto3.client("s3", region_name="us-east-1")
    put(client, S3_MODEL)
    # A shard from an interrupted run with the right size is kept; a short one is fetched again.
    tmp_path.joinpath("model-00001-of-00002.safetensors").write_bytes(b"k" * 300)
    tmp_path.joinpath("model-00002-of-00002.safetensors").write_bytes(b"short")
    marker = dm.download(s3_env(tmp_path))
    assert tmp_path.joinpath("model-00001-of-00002.safetensors").read_bytes() == b"k" * 300
    assert tmp_path.joinpath("model-00002-of-00002.safetensors").read_bytes() == b"1" * 200
    assert tmp_path.joinpath("original", "notes.txt").read_bytes() == b"nested"
    assert not tmp_path.joinpath("r2").exists()
    expected_bytes = sum(len(v) for k, v in S3_MODEL.items() if k.startswith("r1/"))
    assert (marker["files"], marker["bytes"], marker["bucket"], marker["prefix"]) == (
        5,
        expected_bytes,
        "weights",
        "r1",
    )


@mock_aws
def test_s3_download_pages_through_more_than_1000_objects(tmp_path, aws):
    client = boto3.client("s3", region_name="us-east-1")
    objects = {"r1/config.json": b"{}", "r1/model.safetensors": b"00"}
    objects |= {f"r1/extra/{i:04d}.txt": b"x" for i in range(1001)}
    put(client, objects)
    marker = dm.download(s3_env(tmp_path) | {"MAX_WORKERS": "16"})
    assert marker["files"] == 1003
    assert len(list((tmp_path / "extra").iterdir())) == 1001


@mock_aws
def test_s3_keys_escaping_the_directory_are_refused(tmp_path, aws):
    put(boto3.client("s3", region_name="us-east-1"), {"r1/config.json": b"{}", "r1/../../etc/passwd": b"x"})
    with pytest.raises(dm.DownloadError, match="would land outside"):
        dm.download(s3_env(tmp_path / "m"))


def test_the_script_runs_as_the_job_does_against_a_custom_endpoint(tmp_path):
    """The script as a process (python3 download_model.py download / wait), S3 from a local moto server."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        put(
            boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
            ),
            S3_MODEL,
        )
        env = s3_env(tmp_path / "m", endpoint) | {
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
            "PATH": "/usr/bin:/bin",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

        def script(mode: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, str(SCRIPT), mode], env=env, capture_output=True, text=True, timeout=120
            )

        first = script("download")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "5 objects fetched, 0 already present" in first.stdout
        second = script("download")
        assert second.returncode == 0 and "complete (5 files" in second.stdout and "nothing to do" in second.stdout
        gate = script("wait")
        assert gate.returncode == 0 and "weights complete" in gate.stdout
        env["S3_BUCKET"] = "no-such-bucket"
        env["MODEL_IDENTITY"] = json.dumps(json.loads(env["MODEL_IDENTITY"]) | {"bucket": "no-such-bucket"})
        failed = script("download")
        assert failed.returncode != 0 and "NoSuchBucket" in failed.stdout + failed.stderr
        # The failed fetch for other weights took the old marker away: no pod starts on a mix.
        assert not (tmp_path / "m" / dm.MARKER).exists()
    finally:
        server.stop()


# --- stage: the hostPath staging DaemonSet ---------------------------------------------------------------


def stage_env(root, revision=REVISION, **extra) -> dict:
    return hf_env(root / "Qwen2.5-1.5B-Instruct", revision=revision, STAGE_GROUP="qwen-small") | extra


def identity_of(env: dict) -> dict:
    return json.loads(env["MODEL_IDENTITY"])


def progress_for(env: dict) -> Any:
    return dm.Progress("qwen-small", "Qwen2.5-1.5B-Instruct", identity_of(env))


def test_stage_fetches_into_a_revision_directory_and_links_the_model_path_to_it(tmp_path, hub):
    env = stage_env(tmp_path)
    marker = dm.stage(env, progress_for(env))
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    rev = dm.revision_dir(model_dir, identity_of(env))
    assert rev.name == "Qwen2.5-1.5B-Instruct.rev-" + dm.revision_id(identity_of(env))
    assert hub.calls[0]["local_dir"] == str(rev)
    # A relative link: it resolves inside the SGLang pods, which mount the host directory elsewhere.
    assert model_dir.is_symlink() and dm.os.readlink(model_dir) == rev.name
    assert (model_dir / "model.safetensors").read_bytes() == b"0" * 100
    assert marker == json.loads((rev / dm.MARKER).read_text()) and (marker["files"], marker["bytes"]) == (3, 104)
    assert dm.wait(env, sleep=lambda _: None, max_polls=0) is True
    # The link, the lock and the order of served revisions are the only other entries: nothing half-written
    # next to the model.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            model_dir.name,
            rev.name,
            ".Qwen2.5-1.5B-Instruct.sglang-platform.lock",
            ".Qwen2.5-1.5B-Instruct.sglang-platform-served.json",
        ]
    )
    assert dm.served_order(model_dir) == [rev.name]


def test_a_staged_revision_is_not_fetched_again(tmp_path, hub):
    env = stage_env(tmp_path)
    dm.stage(env, progress_for(env))
    progress = progress_for(env)
    dm.stage(env, progress)
    assert len(hub.calls) == 1
    assert progress.complete and progress.fetch_seconds == 0.0


def test_a_new_revision_is_fetched_beside_the_old_one_then_switched(tmp_path, hub):
    old_env, new_env = stage_env(tmp_path), stage_env(tmp_path, revision="b" * 40)
    dm.stage(old_env, progress_for(old_env))
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    old_rev = dm.revision_dir(model_dir, identity_of(old_env))
    seen_during_fetch = []
    original = hub.snapshot_download

    def fetch(**kwargs):
        # While the new revision downloads, the model path still serves the old one, complete: pods of the
        # old revision keep starting, pods of the new one wait.
        seen_during_fetch.append(
            (dm.os.readlink(model_dir), dm.wait(old_env, lambda _: None, 0), dm.wait(new_env, lambda _: None, 0))
        )
        return original(**kwargs)

    sys.modules["huggingface_hub"].snapshot_download = fetch  # type: ignore[attr-defined]
    dm.stage(new_env, progress_for(new_env))
    new_rev = dm.revision_dir(model_dir, identity_of(new_env))
    assert seen_during_fetch == [(old_rev.name, True, False)]
    assert dm.os.readlink(model_dir) == new_rev.name
    assert dm.wait(new_env, lambda _: None, 0) is True and dm.wait(old_env, lambda _: None, 0) is False
    # keepRevisions 1 (the default): the replaced revision stays, so going back needs no fetch.
    assert old_rev.is_dir() and dm.read_marker(old_rev)["revision"] == REVISION
    calls = len(hub.calls)
    dm.stage(old_env, progress_for(old_env))
    assert len(hub.calls) == calls and dm.os.readlink(model_dir) == old_rev.name


def test_earlier_revisions_beyond_the_kept_ones_are_removed_and_open_files_survive(tmp_path, hub):
    revisions = ["a" * 40, "b" * 40, "c" * 40]
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    for revision in revisions[:2]:
        env = stage_env(tmp_path, revision=revision)
        dm.stage(env, progress_for(env))
    # A server of revision b holds its weights open while c replaces it.
    handle = (model_dir / "model.safetensors").open("rb")
    env = stage_env(tmp_path, revision=revisions[2], STAGE_KEEP_REVISIONS="0")
    dm.stage(env, progress_for(env))
    revs = sorted(p.name for p in tmp_path.glob("Qwen2.5-1.5B-Instruct.rev-*"))
    assert revs == [dm.revision_dir(model_dir, identity_of(env)).name]
    assert handle.read() == b"0" * 100
    handle.close()


def test_the_kept_revision_is_the_one_served_before_not_the_last_fetched(tmp_path, hub, monkeypatch):
    # Each marker a later completedAt than the one before (the clock moves on between fetches).
    ticks = iter(range(10**6))
    monkeypatch.setattr(dm, "now", lambda: f"2025-01-01T00:00:{next(ticks):06d}Z")
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    envs = {name: stage_env(tmp_path, revision=name * 40) for name in "abc"}
    rev = {name: dm.revision_dir(model_dir, identity_of(env)).name for name, env in envs.items()}
    # a, then b, then back to a (complete already: no fetch, its completedAt unchanged), then c; keepRevisions 1.
    for name in "abac":
        dm.stage(envs[name], progress_for(envs[name]))
    assert len(hub.calls) == 3
    assert sorted(p.name for p in tmp_path.glob("Qwen2.5-1.5B-Instruct.rev-*")) == sorted([rev["a"], rev["c"]])
    assert dm.served_order(model_dir) == [rev["a"], rev["c"]]
    # Going back to a, the one served before c, needs no fetch.
    dm.stage(envs["a"], progress_for(envs["a"]))
    assert len(hub.calls) == 3 and dm.os.readlink(model_dir) == rev["a"]
    assert dm.served_order(model_dir) == [rev["c"], rev["a"]]


def test_revisions_no_switch_recorded_are_kept_by_completion(tmp_path, hub, monkeypatch):
    # Revisions staged before the order was kept: the most recently completed one stays.
    ticks = iter(range(10**6))
    monkeypatch.setattr(dm, "now", lambda: f"2025-01-01T00:00:{next(ticks):06d}Z")
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    envs = {name: stage_env(tmp_path, revision=name * 40) for name in "abc"}
    rev = {name: dm.revision_dir(model_dir, identity_of(env)).name for name, env in envs.items()}
    for name in "ab":
        dm.stage(envs[name], progress_for(envs[name]))
    dm.served_file(model_dir).unlink()
    dm.stage(envs["c"], progress_for(envs["c"]))
    assert sorted(p.name for p in tmp_path.glob("Qwen2.5-1.5B-Instruct.rev-*")) == sorted([rev["b"], rev["c"]])


def test_a_half_fetched_revision_left_behind_is_removed_after_the_switch(tmp_path, hub):
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    abandoned = dm.revision_dir(model_dir, identity_of(stage_env(tmp_path, revision="d" * 40)))
    abandoned.mkdir(parents=True)
    (abandoned / "model-00001-of-00009.safetensors").write_bytes(b"partial")
    env = stage_env(tmp_path)
    dm.stage(env, progress_for(env))
    assert not abandoned.exists()


def test_weights_the_pods_downloaded_before_staging_are_adopted_without_a_fetch(tmp_path, hub):
    # The layout of the per-pod download: a plain directory with a matching marker.
    env = stage_env(tmp_path)
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    dm.download(hf_env(model_dir))
    hub.calls.clear()
    dm.stage(env, progress_for(env))
    assert hub.calls == []
    assert dm.os.readlink(model_dir) == dm.revision_dir(model_dir, identity_of(env)).name
    assert dm.wait(env, lambda _: None, 0) is True


def test_an_interrupted_download_of_the_pods_is_resumed(tmp_path, hub):
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    model_dir.mkdir()
    (model_dir / "config.json").write_bytes(b"{}")  # no marker: the per-pod download stopped half way
    env = stage_env(tmp_path)
    seen = []
    original = hub.snapshot_download

    def fetch(**kwargs):
        seen.append(sorted(p.name for p in dm.Path(kwargs["local_dir"]).iterdir()))
        return original(**kwargs)

    sys.modules["huggingface_hub"].snapshot_download = fetch  # type: ignore[attr-defined]
    dm.stage(env, progress_for(env))
    rev = dm.revision_dir(model_dir, identity_of(env))
    assert seen == [["config.json"]] and hub.calls[0]["local_dir"] == str(rev)
    assert dm.os.readlink(model_dir) == rev.name
    assert sorted(p.name for p in tmp_path.glob("Qwen2.5-1.5B-Instruct.rev-*")) == [rev.name]


def test_a_plain_directory_of_other_weights_serves_until_the_new_revision_is_in_place(tmp_path, hub):
    model_dir = tmp_path / "Qwen2.5-1.5B-Instruct"
    old = hf_env(model_dir, revision="e" * 40)
    dm.download(old)
    env = stage_env(tmp_path)
    during = []
    original = hub.snapshot_download

    def fetch(**kwargs):
        during.append((model_dir.is_symlink(), dm.wait(old, lambda _: None, 0)))
        return original(**kwargs)

    sys.modules["huggingface_hub"].snapshot_download = fetch  # type: ignore[attr-defined]
    dm.stage(env, progress_for(env))
    assert during == [(False, True)]
    assert dm.os.readlink(model_dir) == dm.revision_dir(model_dir, identity_of(env)).name
    # Kept as a revision of its own (keepRevisions 1), named after its marker.
    aside = dm.revision_dir(model_dir, json.loads(old["MODEL_IDENTITY"]))
    assert dm.read_marker(aside)["revision"] == "e" * 40


def test_a_revision_that_cannot_fit_is_refused_before_the_fetch(tmp_path, hub, monkeypatch):
    sizes = {"config.json": 2, "model.safetensors": 100 * 2**30}
    siblings = [types.SimpleNamespace(rfilename=k, size=v) for k, v in sizes.items()]

    class HfApi:
        def __init__(self, token=None):
            pass

        def model_info(self, repo_id, revision, files_metadata):
            assert (repo_id, revision, files_metadata) == ("Qwen/Qwen2.5-1.5B-Instruct", REVISION, True)
            return types.SimpleNamespace(siblings=siblings)

    sys.modules["huggingface_hub"].HfApi = HfApi  # type: ignore[attr-defined]
    monkeypatch.setattr(dm.shutil, "disk_usage", lambda _: types.SimpleNamespace(free=40 * 2**30))
    env = stage_env(tmp_path)
    progress = progress_for(env)
    with pytest.raises(dm.DownloadError) as info:
        dm.stage(env, progress)
    assert str(info.value) == (
        f"{tmp_path} has 40.0 GiB free but the revision needs 100.0 GiB more: lower staging.keepRevisions, "
        "remove an earlier revision or grow the disk"
    )
    assert hub.calls == []
    assert (progress.expected_bytes, progress.expected_files) == (100 * 2**30 + 2, 2)
    assert not (tmp_path / "Qwen2.5-1.5B-Instruct").exists()


def modelscope_stage_env(root, revision="master") -> dict:
    identity = {"source": "modelscope", "repo": "meituan/DeepSeek-R1-Block-INT8", "revision": revision}
    return {
        "MODEL_DIR": str(root / "DeepSeek-R1-Block-INT8"),
        "MODEL_SOURCE": "modelscope",
        "MODEL_IDENTITY": json.dumps(identity),
        "MODEL_REPO": "meituan/DeepSeek-R1-Block-INT8",
        "MODEL_REVISION": revision,
        "STAGE_GROUP": "deepseek-r1",
    }


@pytest.fixture
def modelscope_hub(monkeypatch):
    """ModelScope whose master moves when told to: ``heads`` is what each revision-detail call answers."""
    fake = FakeHub({"config.json": b"{}", "model.safetensors": b"0" * 10})
    heads: list[str] = []

    class HubApi:
        def get_valid_revision_detail(self, model_id, revision):
            assert (model_id, revision) == ("meituan/DeepSeek-R1-Block-INT8", "master")
            return {
                "Revision": "master",
                "CreatedAt": 1700000000,
                "CommitId": heads.pop(0) if len(heads) > 1 else heads[0],
            }

        def get_model_files(self, *args, **kwargs):
            raise RuntimeError("no file list here")

    module = types.SimpleNamespace(snapshot_download=fake.snapshot_download)
    monkeypatch.setitem(sys.modules, "modelscope", module)
    monkeypatch.setitem(sys.modules, "modelscope.hub", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "modelscope.hub.api", types.SimpleNamespace(HubApi=HubApi))
    return fake, heads


def test_the_stager_records_the_commit_a_moving_branch_named(tmp_path, modelscope_hub, capsys):
    fake, heads = modelscope_hub
    heads += ["c" * 40]
    env = modelscope_stage_env(tmp_path)
    marker = dm.stage(env, dm.Progress("deepseek-r1", "DeepSeek-R1-Block-INT8", identity_of(env)))
    assert marker["commit"] == "c" * 40 and marker["revision"] == "master"
    out = capsys.readouterr().out
    assert f"meituan/DeepSeek-R1-Block-INT8@master is commit {'c' * 40}" in out
    # The log line an operator compares across the group's nodes, also when nothing was fetched.
    assert f"in place, commit {'c' * 40}" in out
    dm.stage(env, dm.Progress("deepseek-r1", "DeepSeek-R1-Block-INT8", identity_of(env)))
    assert len(fake.calls) == 1 and f"in place, commit {'c' * 40}" in capsys.readouterr().out


def test_a_branch_that_moves_during_the_fetch_is_not_marked_complete(tmp_path, modelscope_hub):
    fake, heads = modelscope_hub
    heads += ["c" * 40, "d" * 40]
    env = modelscope_stage_env(tmp_path)
    with pytest.raises(dm.DownloadError) as info:
        dm.stage(env, dm.Progress("deepseek-r1", "DeepSeek-R1-Block-INT8", identity_of(env)))
    assert str(info.value) == (
        f"meituan/DeepSeek-R1-Block-INT8@master moved from commit {'c' * 40} to {'d' * 40} during the fetch; "
        "fetching again so the copy is one commit"
    )
    rev = dm.revision_dir(tmp_path / "DeepSeek-R1-Block-INT8", identity_of(env))
    assert dm.read_marker(rev) is None and not (tmp_path / "DeepSeek-R1-Block-INT8").exists()
    # The retry fetches again and records the commit it got.
    marker = dm.stage(env, dm.Progress("deepseek-r1", "DeepSeek-R1-Block-INT8", identity_of(env)))
    assert marker["commit"] == "d" * 40 and len(fake.calls) == 2


def test_a_hub_that_does_not_say_leaves_the_commit_unknown(tmp_path, monkeypatch, capsys):
    fake = FakeHub({"config.json": b"{}", "model.safetensors": b"0"})
    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=fake.snapshot_download))
    monkeypatch.delitem(sys.modules, "modelscope.hub.api", raising=False)
    env = modelscope_stage_env(tmp_path)
    marker = dm.stage(env, dm.Progress("deepseek-r1", "DeepSeek-R1-Block-INT8", identity_of(env)))
    assert marker["commit"] is None
    assert "in place, commit unknown" in capsys.readouterr().out


def test_progress_metrics_and_log_line(tmp_path):
    env = stage_env(tmp_path, revision="f" * 40)
    progress = progress_for(env)
    progress.expect({"config.json": 2**29, "model.safetensors": 3 * 2**29})
    target = tmp_path / "rev"
    (target / ".cache" / "huggingface" / "download").mkdir(parents=True)
    (target / "config.json").write_bytes(b"x" * 2**29)
    (target / ".cache" / "huggingface" / "download" / "model.safetensors.incomplete").write_bytes(b"x" * 2**28)
    clock = iter([100.0, 102.0])
    progress.measure(target, clock=lambda: next(clock))
    (target / ".cache" / "huggingface" / "download" / "model.safetensors.incomplete").write_bytes(b"x" * 2**29)
    progress.measure(target, clock=lambda: next(clock))
    # Partial files count towards the bytes, only finished ones towards the files.
    assert progress.line() == "1.0 GiB of 2.0 GiB (50.0%), 1 of 2 files, 128.0 MiB/s"
    labels = 'group="qwen-small",model="Qwen2.5-1.5B-Instruct",revision="' + "f" * 40 + '"'
    assert progress.metrics().splitlines() == [
        "# HELP sglang_platform_weights_complete 1 once the weights are verified and in place on this node.",
        "# TYPE sglang_platform_weights_complete gauge",
        f"sglang_platform_weights_complete{{{labels}}} 0.0",
        "# HELP sglang_platform_weights_done_bytes Bytes of the weights on this node, partial files included.",
        "# TYPE sglang_platform_weights_done_bytes gauge",
        f"sglang_platform_weights_done_bytes{{{labels}}} 1073741824.0",
        "# HELP sglang_platform_weights_expected_bytes Bytes the source lists for the weights.",
        "# TYPE sglang_platform_weights_expected_bytes gauge",
        f"sglang_platform_weights_expected_bytes{{{labels}}} 2147483648.0",
        "# HELP sglang_platform_weights_done_files Files of the weights finished on this node.",
        "# TYPE sglang_platform_weights_done_files gauge",
        f"sglang_platform_weights_done_files{{{labels}}} 1.0",
        "# HELP sglang_platform_weights_expected_files Files the source lists for the weights.",
        "# TYPE sglang_platform_weights_expected_files gauge",
        f"sglang_platform_weights_expected_files{{{labels}}} 2.0",
        "# HELP sglang_platform_weights_download_rate_bytes Bytes per second written over the last interval.",
        "# TYPE sglang_platform_weights_download_rate_bytes gauge",
        f"sglang_platform_weights_download_rate_bytes{{{labels}}} 134217728.0",
        "# HELP sglang_platform_weights_errors_total Failed staging attempts (each is retried).",
        "# TYPE sglang_platform_weights_errors_total counter",
        f"sglang_platform_weights_errors_total{{{labels}}} 0.0",
    ]


def _served_metric_names(progress: Any) -> dict[str, str]:
    return {line.split()[2]: line.split()[3] for line in progress.metrics().splitlines() if line.startswith("# TYPE")}


def test_the_metric_list_is_what_the_stager_serves(tmp_path):
    progress = progress_for(stage_env(tmp_path))
    progress.expect({"config.json": 1})
    progress.finish({"files": 1, "bytes": 1}, 12.5)
    listed = {
        line.split()[0]: line.split()[1]
        for line in (ROOT / "facts" / "metrics" / "weights-stager.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert _served_metric_names(progress) == listed


def test_staging_retries_with_backoff_and_counts_the_errors(tmp_path, hub):
    failures = [OSError("connection reset"), dm.DownloadError("1 shards named in x are missing")]
    original = hub.snapshot_download

    def flaky(**kwargs):
        if failures:
            raise failures.pop(0)
        return original(**kwargs)

    sys.modules["huggingface_hub"].snapshot_download = flaky  # type: ignore[attr-defined]
    sleeps: list[float] = []
    env = stage_env(tmp_path, RETRY_SECONDS="30", RETRY_MAX_SECONDS="45")
    assert dm.stage_forever(env, sleep=sleeps.append, serve=False) == 0
    assert sleeps == [30.0, 45.0]
    assert dm.wait(env, lambda _: None, 0) is True


def test_staging_gives_up_only_when_told_to(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails, no requirement to install
    sleeps: list[float] = []
    assert dm.stage_forever(stage_env(tmp_path), sleep=sleeps.append, max_attempts=3, serve=False) == 1
    assert sleeps == [30.0, 60.0]


def test_the_stager_runs_as_the_daemonset_does(tmp_path):
    """download_model.py stage as a process: S3 from a local moto server, metrics and /ready on 127.0.0.1,
    the gate through the link, and SIGTERM ending it at once."""
    import signal
    import time
    import urllib.error
    import urllib.request

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    proc = None
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        put(
            boto3.client(
                "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
            ),
            S3_MODEL,
        )
        env = s3_env(tmp_path / "DeepSeek-R1", endpoint) | {
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
            "PATH": "/usr/bin:/bin",
            "AWS_EC2_METADATA_DISABLED": "true",
            "STAGE_GROUP": "deepseek-r1",
            "METRICS_ADDRESS": "127.0.0.1",
            "METRICS_PORT": "0",
            "PROGRESS_SECONDS": "0.05",
            "PROGRESS_LOG_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "stage"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert " metrics on 127.0.0.1:" in first, first
        metrics_port = int(first.rsplit(":", 1)[1].split("/")[0])
        base = f"http://127.0.0.1:{metrics_port}"

        def get(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        deadline = time.monotonic() + 60
        while get("/ready")[0] != 200:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        assert get("/healthz") == (200, "ok\n")
        expected = sum(len(v) for k, v in S3_MODEL.items() if k.startswith("r1/"))
        samples = {
            line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in get("/metrics")[1].splitlines()
            if not line.startswith("#")
        }
        assert samples["sglang_platform_weights_complete"] == 1.0
        assert samples["sglang_platform_weights_done_bytes"] == samples["sglang_platform_weights_expected_bytes"]
        assert samples["sglang_platform_weights_done_bytes"] == expected
        assert samples["sglang_platform_weights_done_files"] == samples["sglang_platform_weights_expected_files"] == 5
        gate = subprocess.run(
            [sys.executable, str(SCRIPT), "wait"], env=env, capture_output=True, text=True, timeout=60
        )
        assert gate.returncode == 0 and "weights complete" in gate.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        log = first + proc.stdout.read()
        rev = dm.revision_dir(tmp_path / "DeepSeek-R1", json.loads(env["MODEL_IDENTITY"])).name
        assert f"{rev}: fetching " in log
        assert "5 objects fetched, 0 already present" in log
        assert f"DeepSeek-R1 -> {rev}: " in log
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        server.stop()
