"""A model's config.json, read at ``pulumi preview`` from where the weights come from, so the quantization rules
(``facts.quantization``) judge the checkpoint that will actually be served, not a guess from its name.

- Hugging Face: ``GET {endpoint}/{repo}/resolve/{revision}/config.json`` (huggingface_hub's hf_hub_url
  layout), ``Authorization: Bearer`` with the stack secret hfToken for gated or private repositories. Errors
  carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
- ModelScope: ``GET {endpoint}/api/v1/models/{repo}/repo?Revision={revision}&FilePath=config.json``
  (modelscope 1.40.2 ``hub/file_download.py`` get_file_download_url). The SDK logs in with the token to get
  cookies; this sends it as a bearer token, which covers public repositories and is a best effort for private
  ones (declare ``model.quantization`` when it is refused).

The endpoint is the one the group's pods download from: its ``model.download.endpoint``, else the stack's
``modelHubs.<source>``, else what the clients would use here (HF_ENDPOINT as huggingface_hub reads it;
MODELSCOPE_ENDPOINT, then the deprecated MODELSCOPE_DOMAIN, as modelscope-hub's HubConfig reads them), else
the public hub. A configured endpoint that cannot be reached is a problem at the key that set it (it is most
likely mistyped), unless ``preflight.hubEndpoints`` is false (a mirror only the cluster reaches); the public
hub out of reach is a note (the pods may reach what this machine cannot).
- S3: ``GetObject`` of ``{prefix}config.json`` with the client the S3 preflight builds (live.s3).

Nothing is read in the offline render or the tests (SGLANG_PLATFORM_OFFLINE=1), without a source to read from
(``model.source: local``), or when the network does not reach the source: each of those is a note, and the rules
fall back to ``model.quantization`` or the known-models table. What the user must fix (a repository or revision
that does not exist, a refused token, a file that is not JSON) is a problem naming the key.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config.errors import Loc, Problem, key_path
from ..config.model_cache import ModelHubs
from .s3 import OFFLINE_ENV, S3Credentials, s3_client

if TYPE_CHECKING:
    from ..config.stack import PlatformConfig

HF_DEFAULT = "https://huggingface.co"
MODELSCOPE_DEFAULT = "https://www.modelscope.cn"
USER_AGENT = "sglang-platform-preflight"
# At preview: fail fast rather than hold up the whole run.
TIMEOUT_SECONDS = 10.0
MAX_BYTES = 4 * 2**20


@dataclass(frozen=True)
class Fetched:
    """The outcome of one read: ``config`` when it worked, else a ``note`` (could not check) or a ``problem``
    at ``loc`` (relative to the group, like the other group rules; from the root when ``at_root``: a
    platform-wide key such as modelHubs)."""

    where: str
    config: dict[str, Any] | None = None
    note: str | None = None
    problem: str | None = None
    loc: Loc = ("model", "download")
    at_root: bool = False


@dataclass(frozen=True)
class Configured:
    """A hub endpoint the stack sets, and where: ``loc`` relative to the group (``model.download.endpoint``) or
    from the root (``modelHubs.<source>``); ``refuse_unreachable`` is preflight.hubEndpoints."""

    loc: tuple[str, ...]
    refuse_unreachable: bool = True

    @property
    def at_root(self) -> bool:
        return self.loc[0] == "modelHubs"

    @property
    def key(self) -> str:
        return key_path(self.loc) if self.at_root else ".".join(self.loc)


@dataclass(frozen=True)
class Endpoints:
    huggingface: str = HF_DEFAULT
    modelscope: str = MODELSCOPE_DEFAULT

    @classmethod
    def from_env(cls) -> Endpoints:
        modelscope = os.environ.get("MODELSCOPE_ENDPOINT") or os.environ.get("MODELSCOPE_DOMAIN") or MODELSCOPE_DEFAULT
        return cls(os.environ.get("HF_ENDPOINT", HF_DEFAULT).rstrip("/"), _with_scheme(modelscope).rstrip("/"))


def _with_scheme(domain: str) -> str:
    return domain if domain.startswith(("http://", "https://")) else "https://" + domain


def hf_url(endpoint: str, repo: str, revision: str) -> str:
    return f"{endpoint}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/config.json"


def modelscope_url(endpoint: str, repo: str, revision: str) -> str:
    query = urllib.parse.urlencode({"Revision": revision, "FilePath": "config.json"})
    return f"{endpoint}/api/v1/models/{repo}/repo?{query}"


def _parse(body: bytes, where: str) -> Fetched:
    try:
        config = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Fetched(where, problem=f"{where} is not JSON: check that the repository holds a Transformers model")
    if not isinstance(config, dict):
        return Fetched(where, problem=f"{where} is not a JSON object")
    return Fetched(where, config=config)


def _http_get(url: str, token: str | None, timeout: float) -> tuple[int, dict[str, str], bytes]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read(MAX_BYTES)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()) if error.headers else {}, b""


def _site(hub: str, endpoint: str, configured: Configured | None) -> str:
    """How messages name the hub: the public one by name, a configured endpoint by its URL and key."""
    return f"the {hub} endpoint {endpoint} ({configured.key})" if configured else hub


def _unreachable(
    where: str, hub: str, endpoint: str, url: str, error: Exception, configured: Configured | None
) -> Fetched:
    if configured is not None and configured.refuse_unreachable:
        return Fetched(
            where,
            problem=(
                f"cannot reach the {hub} endpoint {endpoint} to read {url} ({error}): check the URL and the network, "
                "or set sglang-platform:preflight.hubEndpoints to false if only the cluster reaches it"
            ),
            loc=configured.loc,
            at_root=configured.at_root,
        )
    return Fetched(
        where,
        note=(
            f"could not reach {_site(hub, endpoint, configured)} to read {url} ({error}); the quantization was not "
            "read from config.json: declare model.quantization to have it checked"
        ),
    )


def fetch_huggingface(
    repo: str,
    revision: str,
    token: str | None,
    endpoint: str = HF_DEFAULT,
    timeout: float = TIMEOUT_SECONDS,
    configured: Configured | None = None,
) -> Fetched:
    url = hf_url(endpoint, repo, revision)
    where = f"config.json of {repo} at {revision} (Hugging Face)"
    site = _site("Hugging Face", endpoint, configured)
    try:
        status, headers, body = _http_get(url, token, timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        return _unreachable(where, "Hugging Face", endpoint, url, error, configured)
    if status == 200:
        return _parse(body, where)
    code = headers.get("X-Error-Code", headers.get("x-error-code", ""))
    secret = "sglang-platform:hfToken"
    if code == "RevisionNotFound":
        return Fetched(
            where,
            problem=f"revision {revision!r} does not exist in {repo} on {site} ({url})",
            loc=("model", "download", "revision"),
        )
    if code == "GatedRepo" or status in (401, 403):
        if token:
            why = f"refused the token in {secret} ({status}{', ' + code if code else ''})"
            fix = "use a token that has access to the repository (accept its terms on its page)"
        else:
            why = f"needs a token ({status}{', ' + code if code else ''}): the repository is gated or private"
            fix = f"run `pulumi config set --secret {secret} <token>`"
        return Fetched(where, problem=f"{site} {why} for {url}: {fix}", loc=("model", "download", "repo"))
    if status == 404 and code == "EntryNotFound":
        return Fetched(
            where,
            problem=f"{repo} at {revision} has no config.json ({url}): it is not a Transformers model SGLang loads",
            loc=("model", "download", "repo"),
        )
    if status == 404:
        # A server that is not a Hugging Face endpoint (a wrong path prefix) answers 404 without X-Error-Code.
        endpoint_hint = (
            f", and that {configured.key} serves Hugging Face's /<repo>/resolve/<revision>/<file> URLs"
            if configured and not code
            else ""
        )
        return Fetched(
            where,
            problem=(
                f"{repo} does not exist on {site}, or is private and {secret} is not set ({url}): check "
                f"model.download.repo{endpoint_hint}"
            ),
            loc=("model", "download", "repo"),
        )
    return Fetched(where, note=f"{site} answered {status} for {url}; the quantization was not read")


def fetch_modelscope(
    repo: str,
    revision: str,
    token: str | None,
    endpoint: str = MODELSCOPE_DEFAULT,
    timeout: float = TIMEOUT_SECONDS,
    configured: Configured | None = None,
) -> Fetched:
    url = modelscope_url(endpoint, repo, revision)
    where = f"config.json of {repo} at {revision} (ModelScope)"
    site = _site("ModelScope", endpoint, configured)
    try:
        status, _, body = _http_get(url, token, timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        return _unreachable(where, "ModelScope", endpoint, url, error, configured)
    if status == 200:
        fetched = _parse(body, where)
        envelope = fetched.config or {}
        # ModelScope's API wraps its errors in {"Code": ..., "Message": ..., "Success": false}; a file is never that.
        if envelope.get("Success") is False and "Message" in envelope:
            return Fetched(
                where,
                problem=f"{site} refused {url}: {envelope.get('Message')}: check model.download.repo and revision",
                loc=("model", "download", "repo"),
            )
        return fetched
    if status in (401, 403):
        fix = (
            "the token in sglang-platform:modelscopeToken was refused"
            if token
            else "run `pulumi config set --secret sglang-platform:modelscopeToken <token>`"
        )
        return Fetched(
            where,
            problem=f"{site} refused {url} ({status}): {fix}, or declare model.quantization",
            loc=("model", "download", "repo"),
        )
    if status == 404:
        return Fetched(
            where,
            problem=(
                f"{site} has no repository {repo} with a config.json at revision {revision!r}, or it is private "
                f"and sglang-platform:modelscopeToken is not set ({url}): check model.download.repo and revision, "
                "or model.source (a model published only on Hugging Face needs source huggingface)"
            ),
            loc=("model", "download", "repo"),
        )
    return Fetched(where, note=f"{site} answered {status} for {url}; the quantization was not read")


def fetch_s3(
    bucket: str,
    prefix: str,
    endpoint: str | None,
    region: str | None,
    credentials: S3Credentials,
) -> Fetched:
    from botocore.exceptions import BotoCoreError, ClientError

    key = (prefix if not prefix or prefix.endswith("/") else prefix + "/") + "config.json"
    where = f"s3://{bucket}/{key}"
    try:
        body = s3_client(endpoint, region, credentials).get_object(Bucket=bucket, Key=key)["Body"].read(MAX_BYTES)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404"):
            return Fetched(
                where,
                problem=f"{where} does not exist: check model.download.prefix",
                loc=("model", "download", "prefix"),
            )
        if code == "NoSuchBucket":
            return Fetched(where, problem=f"bucket {bucket!r} does not exist", loc=("model", "download", "bucket"))
        return Fetched(where, note=f"could not read {where} ({code or error}); the quantization was not read")
    except BotoCoreError as error:
        # The S3 preflight (live.s3) refuses an unreachable endpoint when it lists the prefix.
        return Fetched(
            where,
            note=f"could not reach the S3 endpoint to read {where} ({error}); the quantization was not read from "
            "config.json: declare model.quantization to have it checked",
        )
    return _parse(body, where)


def fetch_config_json(
    source: str,
    download: Any,
    *,
    hf_token: str | None = None,
    modelscope_token: str | None = None,
    s3_credentials: S3Credentials | None = None,
    endpoints: Endpoints | None = None,
    hubs: ModelHubs | None = None,
    refuse_unreachable: bool = True,
    offline: bool | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> Fetched:
    """config.json of a group's weights. ``download`` is the group's ``model.download`` (a
    config.model_cache.ModelDownload, or None when the weights are staged by hand). ``hubs``: the stack's
    modelHubs; an endpoint the stack sets (there or in ``download.endpoint``) wins over ``endpoints`` (the
    clients' environment here, or the public hubs), and ``refuse_unreachable`` (preflight.hubEndpoints) says
    whether not reaching it is a problem."""
    offline = os.environ.get(OFFLINE_ENV) == "1" if offline is None else offline
    endpoints = endpoints or Endpoints.from_env()
    own, own_loc = (hubs or ModelHubs()).endpoint(source, download)
    configured = Configured(own_loc, refuse_unreachable) if own else None
    if download is None or source == "local":
        return Fetched(
            "config.json",
            note="the weights are staged by hand, so config.json cannot be read at preview: declare "
            "model.quantization to have the quantization checked",
        )
    if source == "s3":
        where = f"s3://{download.bucket}/{download.prefix}config.json"
    else:
        where = f"config.json of {download.repo} ({source})"
    if offline:
        return Fetched(where, note=f"{where} not read: offline render")
    if source == "huggingface" and download.repo and download.revision:
        endpoint = own or endpoints.huggingface
        return fetch_huggingface(download.repo, download.revision, hf_token, endpoint, timeout, configured)
    if source == "modelscope" and download.repo and download.revision:
        endpoint = own or endpoints.modelscope
        return fetch_modelscope(download.repo, download.revision, modelscope_token, endpoint, timeout, configured)
    if source == "s3" and download.bucket:
        credentials = s3_credentials or S3Credentials()
        if not credentials.explicit:
            import boto3

            if boto3.Session().get_credentials() is None:
                return Fetched(where, note=f"{where} not read: no S3 credentials here")
        return fetch_s3(download.bucket, download.prefix, download.endpoint, download.region, credentials)
    return Fetched(where, note=f"{where} not read: repository or revision not set")


@dataclass
class ModelConfigs:
    """Reads the config.json of every group's weights at preview (each repository and revision once) and keeps
    what it read by group name, for the quantization rules; notes say what could not be read."""

    hf_token: str | None = None
    modelscope_token: str | None = None
    s3_credentials: S3Credentials = field(default_factory=S3Credentials)
    offline: bool | None = None
    endpoints: Endpoints | None = None
    read: dict[str, Fetched] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def run(self, cfg: PlatformConfig) -> list[Problem]:
        problems: list[Problem] = []
        seen: dict[str, Fetched] = {}
        for i, g in enumerate(cfg.inference_groups):
            download = g.model.download
            if g.model.source == "s3" and not cfg.preflight.s3:
                self.notes.append(f"{g.name}: config.json not read from S3: sglang-platform:preflight.s3 is false")
                continue
            endpoint, _ = cfg.model_hubs.endpoint(g.model.source, download)
            self._plain_http_note(g.model.source, endpoint)
            # Groups downloading the same weights from the same endpoint read them once; staged weights are each
            # their own.
            identity = repr(download.identity(g.model.source)) if download is not None else f"staged:{g.name}"
            identity += f"@{endpoint}"
            fetched = seen.get(identity)
            if fetched is None:
                fetched = fetch_config_json(
                    g.model.source,
                    download,
                    hf_token=self.hf_token,
                    modelscope_token=self.modelscope_token,
                    s3_credentials=self.s3_credentials,
                    endpoints=self.endpoints,
                    hubs=cfg.model_hubs,
                    refuse_unreachable=cfg.preflight.hub_endpoints,
                    offline=self.offline,
                )
                seen[identity] = fetched
            if fetched.problem is not None:
                # A platform-wide endpoint out of reach is one problem at its key, however many groups use it.
                problem = Problem(
                    fetched.loc if fetched.at_root else ("inferenceGroups", i, *fetched.loc), fetched.problem
                )
                if problem not in problems:
                    problems.append(problem)
            elif fetched.config is not None:
                self.read[g.name] = fetched
            elif fetched.note is not None:
                self.notes.append(f"{g.name}: {fetched.note}")
        return problems

    def _plain_http_note(self, source: str, endpoint: str | None) -> None:
        """The pods send the hub token to the endpoint as huggingface_hub and modelscope do: over plain http
        anyone on the path can read it. Not refused: an in-cluster mirror on http is common and may need none."""
        token = {"huggingface": ("hfToken", self.hf_token), "modelscope": ("modelscopeToken", self.modelscope_token)}
        key, value = token.get(source, ("", None))
        if endpoint and endpoint.startswith("http://") and value:
            note = f"sglang-platform:{key} is sent to {endpoint} over plain http (the download pods send it too)"
            if note not in self.notes:
                self.notes.append(note)
