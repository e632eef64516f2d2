"""S3 preflight, run at ``pulumi preview`` before any resource: the model prefix of every s3 group exists,
is readable and holds a model (config.json, safetensors, the shard index when sharded); its total size feeds
the capacity rules. Each way it can fail has its own message naming the bucket and prefix."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config.errors import Problem
from ..facts.quantity import GIB

if TYPE_CHECKING:
    from ..config.stack import PlatformConfig

INDEX = "model.safetensors.index.json"
# Set by tools/render.py (and the tests): no network, so S3 listings are skipped with a note.
OFFLINE_ENV = "SGLANG_PLATFORM_OFFLINE"
DENIED = {"AccessDenied", "403", "AllAccessDisabled", "Forbidden"}
REJECTED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidClientTokenId"}


class S3CheckError(Exception):
    """The prefix cannot serve as model weights; ``key`` is the download key the message is about."""

    def __init__(self, key: str | None, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str | None = None
    secret_access_key: str | None = None

    @property
    def explicit(self) -> bool:
        return bool(self.access_key_id and self.secret_access_key)


@dataclass(frozen=True)
class S3Listing:
    # Key relative to the prefix -> size in bytes, for every object under it (all pages).
    objects: dict[str, int]

    @property
    def total_bytes(self) -> int:
        return sum(self.objects.values())


def url(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}"


def normalized_prefix(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def s3_client(endpoint: str | None, region: str | None, credentials: S3Credentials) -> Any:
    import boto3
    from botocore.config import Config

    # Fail fast at preview: one retry, short connect timeout. Path-style addressing because S3-compatible
    # stores (MinIO, Ceph RGW) behind a plain host name do not resolve bucket sub-domains.
    config = Config(
        connect_timeout=5,
        read_timeout=30,
        retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    kwargs: dict[str, Any] = {"endpoint_url": endpoint, "region_name": region or "us-east-1", "config": config}
    if credentials.explicit:
        kwargs |= {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
        }
    return boto3.client("s3", **kwargs)


def inspect_s3(client: Any, bucket: str, prefix: str, endpoint: str | None = None) -> S3Listing:
    """List ``s3://bucket/prefix`` (every page) and check it holds a model; S3CheckError says why not."""
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = normalized_prefix(prefix)
    where = url(bucket, prefix)
    store = f"endpoint {endpoint}" if endpoint else "AWS S3"

    def explain(exc: ClientError | BotoCoreError, action: str) -> S3CheckError:
        if not isinstance(exc, ClientError):
            return S3CheckError(
                "endpoint",
                f"cannot reach {store} to list {where} ({exc}); check the URL and the network, "
                "or set sglang-platform:preflight.s3 to false to skip this check",
            )
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code == "NoSuchBucket":
            return S3CheckError("bucket", f"bucket {bucket!r} does not exist ({store})")
        if code in REJECTED:
            return S3CheckError(
                None,
                f"{store} rejected the credentials ({code}) listing {where}: check "
                "sglang-platform:s3AccessKeyId / s3SecretAccessKey or the AWS profile",
            )
        if code in DENIED or status == "403":
            if action == "list":
                return S3CheckError("bucket", f"access denied listing {where}: the credentials need s3:ListBucket")
            return S3CheckError(
                "prefix", f"access denied reading {where}config.json: the credentials need s3:GetObject on the prefix"
            )
        return S3CheckError("bucket", f"S3 error {code or status} on {where}: {exc}")

    objects: dict[str, int] = {}
    try:
        # S3 returns at most 1000 keys a call; the paginator follows the continuation tokens.
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if not obj["Key"].endswith("/"):
                    objects[obj["Key"][len(prefix) :]] = int(obj["Size"])
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, "list") from None

    if not objects:
        raise S3CheckError("prefix", f"{where} holds no objects: check the prefix (keys are case-sensitive)")
    top = {k for k in objects if "/" not in k}
    if "config.json" not in top:
        raise S3CheckError("prefix", f"{where} holds {len(objects)} objects but no config.json directly under it")
    shards = sorted(k for k in top if k.endswith(".safetensors"))
    if not shards:
        raise S3CheckError("prefix", f"{where} holds no *.safetensors weights directly under it")
    try:
        client.head_object(Bucket=bucket, Key=prefix + "config.json")
        if INDEX in top:
            body = client.get_object(Bucket=bucket, Key=prefix + INDEX)["Body"].read()
        else:
            body = None
    except (ClientError, BotoCoreError) as exc:
        raise explain(exc, "read") from None
    if len(shards) > 1 and body is None:
        raise S3CheckError(
            "prefix", f"{where} holds {len(shards)} safetensors shards but no {INDEX} to say which weight is where"
        )
    if body is not None:
        try:
            wanted = set(json.loads(body)["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise S3CheckError("prefix", f"{where}{INDEX} is not a safetensors index (no weight_map)") from None
        missing = sorted(wanted - set(shards))
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise S3CheckError("prefix", f"{where}{INDEX} names {len(missing)} shards missing from the prefix: {shown}")
    return S3Listing(objects)


@dataclass
class S3Preflight:
    """Checks every s3 group of a config; keeps the measured sizes and notes for the caller."""

    credentials: S3Credentials = field(default_factory=S3Credentials)
    offline: bool = False
    measured_gib: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def run(self, cfg: PlatformConfig) -> list[Problem]:
        problems: list[Problem] = []
        for i, g in enumerate(cfg.inference_groups):
            d = g.model.download
            if g.model.source != "s3" or d is None or not d.bucket:
                continue
            if self.offline:
                self.notes.append(
                    f"{g.name}: S3 preflight skipped for {url(d.bucket, normalized_prefix(d.prefix))}: offline render"
                )
                continue
            if not self._have_credentials():
                self.notes.append(
                    f"{g.name}: S3 preflight skipped for {url(d.bucket, normalized_prefix(d.prefix))}: no credentials "
                    "here (set sglang-platform:s3AccessKeyId/s3SecretAccessKey, AWS_* variables or a profile)"
                )
                continue
            client = s3_client(d.endpoint, d.region, self.credentials)
            try:
                listing = inspect_s3(client, d.bucket, d.prefix, d.endpoint)
            except S3CheckError as error:
                loc: tuple[str | int, ...] = ("inferenceGroups", i, "model", "download")
                if error.key:
                    loc += (error.key,)
                problems.append(Problem(loc, error.message))
                continue
            self.measured_gib[g.name] = listing.total_bytes / GIB
        return problems

    def _have_credentials(self) -> bool:
        if self.credentials.explicit:
            return True
        import boto3

        return boto3.Session().get_credentials() is not None
