"""Reading a model's config.json at preview: Hugging Face and ModelScope against a local fake server, S3 against
moto, and every way it can fail. No test reaches the network (the conftest sets SGLANG_PLATFORM_OFFLINE=1;
tests that read pass offline=False and point the endpoints at 127.0.0.1)."""

from __future__ import annotations

import copy
import json
import socket

import boto3
import pytest
from fake_hub import COMMIT, R1_CONFIG, TOKEN, FakeHub, serve
from moto import mock_aws

from sglang_platform.config.model_cache import ModelDownload
from sglang_platform.facts import quantization
from sglang_platform.live.config_json import Endpoints, fetch_config_json, hf_url, modelscope_url
from sglang_platform.live.s3 import S3Credentials


@pytest.fixture(scope="module")
def hub():
    with serve() as endpoints:
        yield endpoints


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hf(repo: str, revision: str = COMMIT) -> ModelDownload:
    return ModelDownload(repo=repo, revision=revision)


def read(hub, source: str, download, **kwargs):
    return fetch_config_json(source, download, endpoints=hub, offline=False, timeout=5, **kwargs)


def test_urls_follow_the_hubs_layouts():
    assert hf_url("https://huggingface.co", "deepseek-ai/DeepSeek-R1", "main") == (
        "https://huggingface.co/deepseek-ai/DeepSeek-R1/resolve/main/config.json"
    )
    assert modelscope_url("https://www.modelscope.cn", "deepseek-ai/DeepSeek-R1", "v1.0") == (
        "https://www.modelscope.cn/api/v1/models/deepseek-ai/DeepSeek-R1/repo?Revision=v1.0&FilePath=config.json"
    )


def test_endpoints_from_the_same_variables_the_hub_clients_read(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com/")
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "modelscope.ai")
    assert Endpoints.from_env() == Endpoints("https://hf-mirror.com", "https://modelscope.ai")


def test_reads_hugging_face_and_detects_the_quantization(hub):
    fetched = read(hub, "huggingface", hf("deepseek-ai/DeepSeek-R1"))
    assert fetched.problem is None and fetched.note is None
    assert quantization.detect(fetched.config or {}).scheme == "fp8-block"
    assert fetched.where == f"config.json of deepseek-ai/DeepSeek-R1 at {COMMIT} (Hugging Face)"
    assert FakeHub.seen[-1]["headers"]["User-Agent"] == "sglang-platform-preflight"
    assert "Authorization" not in FakeHub.seen[-1]["headers"]


def test_reads_modelscope(hub):
    fetched = read(hub, "modelscope", ModelDownload(repo="meituan/DeepSeek-R1-Block-INT8", revision="master"))
    assert quantization.detect(fetched.config or {}).scheme == "int8-block"
    assert FakeHub.seen[-1]["query"] == "Revision=master&FilePath=config.json"


def test_gated_repositories_need_the_token(hub):
    without = read(hub, "huggingface", hf("meta-llama/Gated"))
    assert without.loc == ("model", "download", "repo")
    assert "needs a token (401, GatedRepo)" in (without.problem or "")
    assert "pulumi config set --secret sglang-platform:hfToken <token>" in (without.problem or "")
    wrong = read(hub, "huggingface", hf("meta-llama/Gated"), hf_token="hf_wrong")
    assert "refused the token in sglang-platform:hfToken (403, GatedRepo)" in (wrong.problem or "")
    right = read(hub, "huggingface", hf("meta-llama/Gated"), hf_token=TOKEN)
    assert right.config == {"num_attention_heads": 32}
    assert FakeHub.seen[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("repo", "revision", "loc", "text"),
    [
        ("deepseek-ai/DeepSeek-R1", "b" * 40, ("model", "download", "revision"), "does not exist in"),
        ("nobody/nothing", COMMIT, ("model", "download", "repo"), "does not exist on Hugging Face"),
        ("team/weights-only", COMMIT, ("model", "download", "repo"), "has no config.json"),
        ("team/not-json", COMMIT, ("model", "download"), "is not JSON"),
    ],
)
def test_hugging_face_failures_name_the_key(hub, repo, revision, loc, text):
    fetched = read(hub, "huggingface", hf(repo, revision))
    assert fetched.config is None and fetched.loc == loc
    assert text in (fetched.problem or ""), fetched


def test_modelscope_failures(hub):
    missing = read(hub, "modelscope", ModelDownload(repo="meituan/DeepSeek-R1-Block-INT8", revision="v9"))
    assert missing.loc == ("model", "download", "repo")
    assert "ModelScope has no repository meituan/DeepSeek-R1-Block-INT8 with a config.json at revision 'v9'" in (
        missing.problem or ""
    )
    nowhere = read(hub, "modelscope", ModelDownload(repo="someone/Not-There", revision="master"))
    assert (nowhere.problem or "").startswith("ModelScope has no repository someone/Not-There")
    envelope = read(hub, "modelscope", ModelDownload(repo="team/envelope", revision="master"))
    assert envelope.config is None and "model not found" in (envelope.problem or "")
    private = read(hub, "modelscope", ModelDownload(repo="team/private", revision="master"))
    assert "sglang-platform:modelscopeToken" in (private.problem or "")


def test_an_unreachable_hub_is_a_note_not_a_problem():
    nowhere = Endpoints(f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}")
    for source in ("huggingface", "modelscope"):
        fetched = fetch_config_json(source, hf("deepseek-ai/DeepSeek-R1"), endpoints=nowhere, offline=False)
        assert fetched.problem is None and fetched.config is None
        assert "declare model.quantization to have it checked" in (fetched.note or "")


def test_nothing_is_read_offline_or_without_a_source(hub):
    before = len(FakeHub.seen)
    offline = fetch_config_json("huggingface", hf("deepseek-ai/DeepSeek-R1"), endpoints=hub)
    assert offline.note == "config.json of deepseek-ai/DeepSeek-R1 (huggingface) not read: offline render"
    staged = fetch_config_json("local", None, endpoints=hub, offline=False)
    assert "staged by hand" in (staged.note or "")
    assert len(FakeHub.seen) == before


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@mock_aws
def test_reads_s3(aws_env):
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="weights")
    client.put_object(Bucket="weights", Key="r1/config.json", Body=json.dumps(R1_CONFIG).encode())
    download = ModelDownload(bucket="weights", prefix="r1")
    fetched = fetch_config_json("s3", download, offline=False, s3_credentials=S3Credentials())
    assert fetched.where == "s3://weights/r1/config.json"
    assert quantization.detect(fetched.config or {}).scheme == "fp8-block"
    missing = fetch_config_json("s3", ModelDownload(bucket="weights", prefix="r2/"), offline=False)
    assert missing.loc == ("model", "download", "prefix") and "does not exist" in (missing.problem or "")
    no_bucket = fetch_config_json("s3", ModelDownload(bucket="other-bucket", prefix="r1"), offline=False)
    assert no_bucket.loc == ("model", "download", "bucket")


def test_every_group_is_read_once_per_repository(hub):
    from conftest import REQUIRED_SECRETS, stack_values

    from sglang_platform.config import validate
    from sglang_platform.live.config_json import ModelConfigs

    raw = stack_values("prod")
    second = copy.deepcopy(raw["inferenceGroups"][0]) | {"name": "deepseek-r1-b"}
    second["model"]["servedName"] = "deepseek-r1-b"
    raw["inferenceGroups"].append(second)
    raw["inferenceGroups"].append(
        {
            "name": "from-s3",
            "model": {"path": "m", "servedName": "m", "source": "s3", "download": {"bucket": "weights", "prefix": "m"}},
            "modelVolume": {"type": "pvc", "claimName": "s3-models"},
            "gpusPerNode": 1,
            "scheduler": "volcano",
            "resources": {"cpu": "8", "memory": "64Gi", "shmSize": "8Gi"},
        }
    )
    raw["preflight"] = {"s3": False, "capacity": False}
    raw["volcano"]["queue"]["capability"] = {}
    cfg = validate(raw, REQUIRED_SECRETS)
    configs = ModelConfigs(endpoints=hub, offline=False)
    before = len(FakeHub.seen)
    assert configs.run(cfg) == []
    assert len(FakeHub.seen) == before + 1
    assert sorted(configs.read) == ["deepseek-r1", "deepseek-r1-b"]
    assert configs.notes == ["from-s3: config.json not read from S3: sglang-platform:preflight.s3 is false"]
    # A missing repository is a problem at the group's key.
    raw["inferenceGroups"][0]["model"] |= {"path": "Missing"}
    raw["inferenceGroups"][0]["model"]["download"]["repo"] = "meituan/Missing"
    (problem,) = ModelConfigs(endpoints=hub, offline=False).run(validate(raw, REQUIRED_SECRETS))
    assert problem.loc == ("inferenceGroups", 0, "model", "download", "repo")


# --- a hub endpoint the stack sets (modelHubs, model.download.endpoint) -------------------------------------


def prod_with(hubs: dict | None = None, endpoint: str | None = None, **preflight):
    from conftest import REQUIRED_SECRETS, on_modelscope, stack_values

    from sglang_platform.config import validate

    raw = on_modelscope(copy.deepcopy(stack_values("prod")))
    raw["modelHubs"] = hubs or {}
    if endpoint:
        raw["inferenceGroups"][0]["model"]["download"]["endpoint"] = endpoint
    raw["preflight"] = {"capacity": False, **preflight}
    return validate(raw, REQUIRED_SECRETS)


def test_the_preview_reads_config_json_from_the_configured_endpoint(hub):
    from sglang_platform.live.config_json import ModelConfigs

    # What this machine's environment says (HF_ENDPOINT, MODELSCOPE_ENDPOINT) is not where the pods download
    # from: the stack's endpoint is, so the preview reads there.
    elsewhere = Endpoints(f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{closed_port()}")
    configs = ModelConfigs(endpoints=elsewhere, offline=False)
    before = len(FakeHub.seen)
    assert configs.run(prod_with({"modelscope": hub.modelscope + "/"})) == []
    (seen,) = FakeHub.seen[before:]
    assert (seen["path"], seen["query"]) == (
        "/api/v1/models/meituan/DeepSeek-R1-Block-INT8/repo",
        "Revision=master&FilePath=config.json",
    )
    assert quantization.detect(configs.read["deepseek-r1"].config or {}).scheme == "int8-block"
    assert configs.notes == []


def test_an_unreachable_configured_endpoint_is_refused_at_its_key():
    from sglang_platform.live.config_json import ModelConfigs

    port = closed_port()
    url = f"http://127.0.0.1:{port}/api/v1/models/meituan/DeepSeek-R1-Block-INT8/repo?Revision=master&FilePath=config.json"
    (problem,) = ModelConfigs(offline=False).run(prod_with({"modelscope": f"http://127.0.0.1:{port}"}))
    assert problem.key == "sglang-platform:modelHubs.modelscope"
    assert problem.message.startswith(f"cannot reach the ModelScope endpoint http://127.0.0.1:{port} to read {url} (")
    assert problem.message.endswith(
        "): check the URL and the network, or set sglang-platform:preflight.hubEndpoints to false if only the "
        "cluster reaches it"
    )
    (own,) = ModelConfigs(offline=False).run(prod_with(endpoint=f"http://127.0.0.1:{port}"))
    assert own.key == "sglang-platform:inferenceGroups[0].model.download.endpoint"
    # A mirror only the cluster reaches: a note, and the stack goes on.
    configs = ModelConfigs(offline=False)
    assert configs.run(prod_with({"modelscope": f"http://127.0.0.1:{port}"}, hubEndpoints=False)) == []
    (note,) = configs.notes
    assert note.startswith(
        f"deepseek-r1: could not reach the ModelScope endpoint http://127.0.0.1:{port} "
        "(sglang-platform:modelHubs.modelscope) to read "
    )


def test_a_missing_repository_on_a_mirror_names_the_mirror(hub):
    fetched = read(
        hub,
        "huggingface",
        ModelDownload(repo="nobody/nothing", revision=COMMIT, endpoint=hub.huggingface),
    )
    assert fetched.loc == ("model", "download", "repo")
    assert fetched.problem == (
        f"nobody/nothing does not exist on the Hugging Face endpoint {hub.huggingface} (model.download.endpoint), or "
        f"is private and sglang-platform:hfToken is not set ({hf_url(hub.huggingface, 'nobody/nothing', COMMIT)}): "
        "check model.download.repo"
    )


def test_a_token_sent_over_plain_http_is_noted(hub):
    from sglang_platform.live.config_json import ModelConfigs

    configs = ModelConfigs(modelscope_token="ms-token", offline=True)
    assert configs.run(prod_with({"modelscope": hub.modelscope})) == []
    # Even offline (the render): it is about the pods as much as the preview.
    assert configs.notes == [
        f"sglang-platform:modelscopeToken is sent to {hub.modelscope} over plain http (the download pods send it too)",
        "deepseek-r1: config.json of meituan/DeepSeek-R1-Block-INT8 (modelscope) not read: offline render",
    ]
    quiet = ModelConfigs(offline=True)
    quiet.run(prod_with({"modelscope": hub.modelscope}))
    assert not [n for n in quiet.notes if "plain http" in n]
