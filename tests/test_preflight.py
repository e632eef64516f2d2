"""The S3 preflight against moto (in-process, and a local moto server for a custom endpoint): every way a
model prefix can be wrong has its own message naming the bucket and prefix. No test touches the network."""

from __future__ import annotations

import copy
import json
import socket

import boto3
import pytest
from conftest import REQUIRED_SECRETS, run_with, stack_values
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from sglang_platform.config import ConfigError, validate
from sglang_platform.facts.quantity import GIB
from sglang_platform.live.s3 import S3CheckError, S3Credentials, S3Preflight, inspect_s3, s3_client

BUCKET = "team-weights"
INDEX = {
    "metadata": {},
    "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"},
}


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path):
    # Fake credentials for moto, and nothing real to fall back on (no profile, no instance metadata).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def put_model(client, prefix: str = "deepseek/r1/", *, sharded: bool = True, index: dict | None = INDEX) -> int:
    """A small model layout under ``prefix``; returns its total bytes."""
    files = {"config.json": b'{"architectures": ["X"]}', "tokenizer.json": b"{}"}
    if sharded:
        files |= {"model-00001-of-00002.safetensors": b"0" * 1000, "model-00002-of-00002.safetensors": b"1" * 500}
        if index is not None:
            files[INDEX_NAME] = json.dumps(index).encode()
    else:
        files["model.safetensors"] = b"0" * 700
    for name, body in files.items():
        client.put_object(Bucket=BUCKET, Key=prefix + name, Body=body)
    return sum(len(b) for b in files.values())


INDEX_NAME = "model.safetensors.index.json"


def new_bucket():
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


FROM_ENV = S3Credentials()


def inspect(prefix: str = "deepseek/r1", credentials: S3Credentials = FROM_ENV):
    return inspect_s3(s3_client(None, None, credentials), BUCKET, prefix)


def failure(prefix: str = "deepseek/r1", credentials: S3Credentials = FROM_ENV) -> tuple[str | None, str]:
    with pytest.raises(S3CheckError) as info:
        inspect(prefix, credentials)
    return info.value.key, info.value.message


@mock_aws
def test_a_complete_sharded_model_is_measured():
    total = put_model(new_bucket())
    listing = inspect()
    assert listing.total_bytes == total
    assert sorted(listing.objects) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        INDEX_NAME,
        "tokenizer.json",
    ]


@mock_aws
def test_a_single_file_model_needs_no_index():
    total = put_model(new_bucket(), sharded=False)
    assert inspect().total_bytes == total


@mock_aws
def test_missing_bucket():
    assert failure() == ("bucket", "bucket 'team-weights' does not exist (AWS S3)")


@mock_aws
def test_empty_prefix():
    put_model(new_bucket(), prefix="deepseek/r1/")
    assert failure("deepseek/R1") == (
        "prefix",
        "s3://team-weights/deepseek/R1/ holds no objects: check the prefix (keys are case-sensitive)",
    )


@mock_aws
def test_no_config_json():
    client = new_bucket()
    client.put_object(Bucket=BUCKET, Key="m/model.safetensors", Body=b"0")
    assert failure("m/") == ("prefix", "s3://team-weights/m/ holds 1 objects but no config.json directly under it")


@mock_aws
def test_no_safetensors():
    client = new_bucket()
    client.put_object(Bucket=BUCKET, Key="m/config.json", Body=b"{}")
    client.put_object(Bucket=BUCKET, Key="m/pytorch_model.bin", Body=b"0")
    assert failure("m") == ("prefix", "s3://team-weights/m/ holds no *.safetensors weights directly under it")


@mock_aws
def test_shards_without_their_index():
    put_model(new_bucket(), index=None)
    assert failure() == (
        "prefix",
        "s3://team-weights/deepseek/r1/ holds 2 safetensors shards but no model.safetensors.index.json to say "
        "which weight is where",
    )


@mock_aws
def test_index_naming_a_missing_shard():
    index = copy.deepcopy(INDEX)
    index["weight_map"]["c"] = "model-00003-of-00003.safetensors"
    put_model(new_bucket(), index=index)
    assert failure() == (
        "prefix",
        "s3://team-weights/deepseek/r1/model.safetensors.index.json names 1 shards missing from the prefix: "
        "model-00003-of-00003.safetensors",
    )


def _user_with(policy_actions: list[str]) -> S3Credentials:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="reader")
    statement = {"Effect": "Allow", "Action": policy_actions, "Resource": "*"}
    iam.put_user_policy(
        UserName="reader",
        PolicyName="weights",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    return S3Credentials(key["AccessKeyId"], key["SecretAccessKey"])


@mock_aws
@set_initial_no_auth_action_count(9)  # setup runs unchecked (bucket, 5 objects, 3 IAM calls), then IAM applies
def test_access_denied_listing():
    put_model(new_bucket())
    credentials = _user_with(["s3:GetObject"])
    assert failure(credentials=credentials) == (
        "bucket",
        "access denied listing s3://team-weights/deepseek/r1/: the credentials need s3:ListBucket",
    )


@mock_aws
@set_initial_no_auth_action_count(9)
def test_listable_but_not_readable():
    put_model(new_bucket())
    credentials = _user_with(["s3:ListBucket"])
    assert failure(credentials=credentials) == (
        "prefix",
        "access denied reading s3://team-weights/deepseek/r1/config.json: the credentials need s3:GetObject on "
        "the prefix",
    )


@mock_aws
@set_initial_no_auth_action_count(6)
def test_rejected_credentials():
    put_model(new_bucket())
    assert failure(credentials=S3Credentials("AKIAUNKNOWN000000000", "wrong")) == (
        None,
        "AWS S3 rejected the credentials (InvalidAccessKeyId) listing s3://team-weights/deepseek/r1/: check "
        "sglang-platform:s3AccessKeyId / s3SecretAccessKey or the AWS profile",
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint():
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(S3CheckError) as info:
        inspect_s3(s3_client(endpoint, None, S3Credentials("a", "b")), BUCKET, "deepseek/r1", endpoint)
    assert info.value.key == "endpoint"
    assert info.value.message.startswith(f"cannot reach endpoint {endpoint} to list s3://team-weights/deepseek/r1/ (")
    assert info.value.message.endswith(
        "); check the URL and the network, or set sglang-platform:preflight.s3 to false to skip this check"
    )


@mock_aws
def test_more_than_1000_objects_are_paged():
    client = new_bucket()
    total = put_model(client, sharded=False)
    for i in range(1100):
        client.put_object(Bucket=BUCKET, Key=f"deepseek/r1/original/{i:04d}.pt", Body=b"ab")
    calls = []
    boto = s3_client(None, None, S3Credentials())
    boto.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append(kw))
    listing = inspect_s3(boto, BUCKET, "deepseek/r1")
    assert len(listing.objects) == 3 + 1100
    assert listing.total_bytes == total + 2200
    assert len(calls) == 2


def test_custom_endpoint_on_a_local_moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        total = put_model(client, prefix="minio/r1/")
        listing = inspect_s3(s3_client(endpoint, "us-east-1", S3Credentials("a", "b")), BUCKET, "minio/r1", endpoint)
        assert listing.total_bytes == total
        with pytest.raises(S3CheckError) as info:
            inspect_s3(s3_client(endpoint, None, S3Credentials("a", "b")), "no-such-bucket", "m", endpoint)
        assert info.value.message == f"bucket 'no-such-bucket' does not exist (endpoint {endpoint})"
    finally:
        server.stop()


# --- through the stack configuration: keys, all problems at once, measured sizes -------------------------


def s3_dev(**download) -> dict:
    raw = copy.deepcopy(stack_values("dev"))
    model = raw["inferenceGroups"][0]["model"]
    model["source"] = "s3"
    model["download"] = {"bucket": BUCKET, "prefix": "deepseek/r1"} | download
    return raw


@mock_aws
def test_validate_measures_s3_weights_for_the_capacity_rules():
    put_model(new_bucket())
    preflight = S3Preflight(S3Credentials("testing", "testing"))
    validate(s3_dev(), REQUIRED_SECRETS, preflight)
    assert preflight.measured_gib == {"qwen-small": pytest.approx(put_model_total() / GIB)}
    assert preflight.notes == []


def put_model_total() -> int:
    return len(b'{"architectures": ["X"]}') + 2 + 1500 + len(json.dumps(INDEX).encode())


@mock_aws
def test_s3_problems_come_with_the_other_problems_and_their_keys():
    new_bucket()
    raw = s3_dev(prefix="missing/")
    raw["inferenceGroups"][0]["gpusPerNode"] = 0
    with pytest.raises(ConfigError) as info:
        validate(raw, REQUIRED_SECRETS, S3Preflight(S3Credentials("testing", "testing")))
    # Field errors stop before the network; fix them and the S3 problem shows with the cross-field ones.
    assert [p.key for p in info.value.problems] == ["sglang-platform:inferenceGroups[0].gpusPerNode"]
    raw["inferenceGroups"][0]["gpusPerNode"] = 1
    raw["inferenceGroups"][0]["model"]["download"]["repo"] = "Qwen/Qwen2.5-1.5B-Instruct"
    with pytest.raises(ConfigError) as info:
        validate(raw, REQUIRED_SECRETS, S3Preflight(S3Credentials("testing", "testing")))
    assert [(p.key, p.message) for p in info.value.problems] == [
        (
            "sglang-platform:inferenceGroups[0].model.download.prefix",
            "s3://team-weights/missing/ holds no objects: check the prefix (keys are case-sensitive)",
        ),
        (
            "sglang-platform:inferenceGroups[0].model.download.repo",
            "only allowed with source huggingface or modelscope",
        ),
    ]


def test_without_credentials_the_listing_is_skipped_with_a_note(monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    preflight = S3Preflight(S3Credentials())
    validate(s3_dev(), REQUIRED_SECRETS, preflight)
    assert preflight.notes == [
        "qwen-small: S3 preflight skipped for s3://team-weights/deepseek/r1/: no credentials here (set "
        "sglang-platform:s3AccessKeyId/s3SecretAccessKey, AWS_* variables or a profile)"
    ]


@mock_aws
def test_preflight_s3_false_skips_the_listing():
    raw = s3_dev(bucket="no-such-bucket")
    raw["preflight"] = {"s3": False}
    preflight = S3Preflight(S3Credentials("testing", "testing"))
    validate(raw, REQUIRED_SECRETS, preflight)
    assert preflight.measured_gib == {}


@mock_aws
def test_the_program_refuses_a_missing_prefix_at_preview(monkeypatch):
    monkeypatch.setenv("SGLANG_PLATFORM_OFFLINE", "0")
    new_bucket()

    def mutate(values):
        values.update(s3_dev(prefix="nothing-here"))

    result = run_with("dev", mutate, secrets={"s3AccessKeyId": "testing", "s3SecretAccessKey": "testing"})
    assert result.error is not None
    assert (
        "sglang-platform:inferenceGroups[0].model.download.prefix: s3://team-weights/nothing-here/ holds no "
        "objects: check the prefix (keys are case-sensitive)" in result.error
    )
    assert result.resources == []


@mock_aws
def test_the_program_sizes_the_startup_probe_from_the_measured_weights(monkeypatch):
    monkeypatch.setenv("SGLANG_PLATFORM_OFFLINE", "0")
    client = new_bucket()
    put_model(client, sharded=False)
    # 300 GiB declared by the listing: moto stores the bytes, so a big object is stood in for by its size.
    monkeypatch.setattr("sglang_platform.live.s3.S3Listing.total_bytes", property(lambda self: 300 * GIB), raising=True)

    def mutate(values):
        values.update(s3_dev())
        group = values["inferenceGroups"][0]
        # A 300 GiB model the known-models table does not hold (Qwen2.5-1.5B cannot be split over 8 GPUs).
        group["model"]["path"] = "Big-Model"
        group["gpusPerNode"] = 8
        group["tensorParallel"] = 8
        group["modelVolume"]["pvc"]["size"] = "400Gi"

    result = run_with("dev", mutate, secrets={"s3AccessKeyId": "testing", "s3SecretAccessKey": "testing"})
    assert result.error is None, result.error
    pod = result.k8s_object("LeaderWorkerSet", "qwen-small")["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    startup = pod["spec"]["containers"][0]["startupProbe"]
    # 10 minutes to start plus 300 GiB at 10 GiB/min, above the stack's 15.
    assert startup["periodSeconds"] * startup["failureThreshold"] == 40 * 60
