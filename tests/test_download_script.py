"""components/scripts/download_model.py, the script the download Job and init containers run, against a
local directory: fake Hugging Face / ModelScope clients, S3 through moto, and the script run as a process
against a local moto server (a custom endpoint). No network."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types

import boto3
import pytest
from conftest import ROOT
from moto import mock_aws

SCRIPT = ROOT / "components" / "scripts" / "download_model.py"
spec = importlib.util.spec_from_file_location("download_model", SCRIPT)
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
    sys.modules["huggingface_hub"].snapshot_download = fetch
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


def test_wait_holds_until_the_matching_marker_exists(tmp_path, hub):
    env = hf_env(tmp_path)
    sleeps = []
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
