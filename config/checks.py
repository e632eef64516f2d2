"""Rules that span several fields, run once the field rules pass. Each returns Problems, never raises."""

from __future__ import annotations

from collections import Counter

from config.addons import check_addons
from config.charts import check_charts
from config.errors import Problem
from config.models import FLAG_SINCE, MANAGED_FLAGS, InferenceGroup, PlatformConfig
from config.quantity import parse_quantity


def check_platform(cfg: PlatformConfig, secrets_present: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    if cfg.require_api_key and "apiKey" not in secrets_present:
        problems.append(_missing_secret("apiKey", "requireApiKey", "key"))
    if cfg.versions.sglang_release is None:
        problems.append(
            Problem(
                ("versions", "sglangVersion"),
                f"cannot tell the SGLang release of {cfg.versions.sglang_image!r}: set versions.sglangVersion "
                "(e.g. 0.4.3.post2) so flags can be checked against it",
            )
        )
    for field, label in (("name", "group name"), ("served_name", "served model name")):
        values = [g.name if field == "name" else g.model.served_name for g in cfg.inference_groups]
        for value, count in Counter(values).items():
            if count > 1:
                for i, v in enumerate(values):
                    if v == value:
                        key = ("name",) if field == "name" else ("model", "servedName")
                        problems.append(
                            Problem(
                                ("inferenceGroups", i, *key),
                                f"{label} {value!r} is used by {count} groups; each must be unique",
                            )
                        )
    for i, group in enumerate(cfg.inference_groups):
        problems += [Problem(("inferenceGroups", i, *p.loc), p.message) for p in check_group(group, cfg)]
    problems += check_front_end(cfg, secrets_present)
    problems += check_addons(cfg)
    problems += check_charts(cfg)
    problems += check_autoscaling(cfg)
    return problems


def check_autoscaling(cfg: PlatformConfig) -> list[Problem]:
    out: list[Problem] = []
    for i, g in enumerate(cfg.inference_groups):
        scaling = g.autoscaling
        if scaling is None:
            continue
        loc: tuple[str | int, ...] = ("inferenceGroups", i, "autoscaling")
        if scaling.min_replicas > scaling.max_replicas:
            out.append(
                Problem(
                    (*loc, "minReplicas"),
                    f"minReplicas {scaling.min_replicas} is above maxReplicas {scaling.max_replicas}",
                )
            )
        if cfg.keda.mode == "absent":
            out.append(
                Problem(
                    loc,
                    "autoscaling needs KEDA: set sglang-platform:keda.mode to install (this stack installs it) "
                    "or present (the cluster already runs it)",
                )
            )
        if not cfg.monitoring.enabled and cfg.keda.prometheus_address is None:
            out.append(
                Problem(
                    loc,
                    "autoscaling reads SGLang's metrics from Prometheus: enable sglang-platform:monitoring or set "
                    "sglang-platform:keda.prometheusAddress to a Prometheus that scrapes the groups",
                )
            )
    return out


# How a problem about an unset required secret begins; tools/harness.py reads it to know which secrets a
# render must fill with placeholders.
MISSING_SECRET = "required secret is not set"


def _missing_secret(key: str, switch: str, placeholder: str = "value") -> Problem:
    """``switch`` is the boolean stack key that makes ``key`` required."""
    return Problem(
        (key,),
        f"{MISSING_SECRET} ({switch} is true): run `pulumi config set --secret sglang-platform:{key} "
        f"<{placeholder}>` or set sglang-platform:{switch} to false",
    )


def check_front_end(cfg: PlatformConfig, secrets_present: set[str]) -> list[Problem]:
    """Open WebUI and monitoring: their secrets, and the Ingress settings that only make sense together."""
    out: list[Problem] = []
    ui = cfg.open_webui
    if ui.enabled and "webuiSecretKey" not in secrets_present:
        out.append(_missing_secret("webuiSecretKey", "openWebui.enabled"))
    if ui.ingress.enabled and not ui.ingress.host:
        out.append(Problem(("openWebui", "ingress", "host"), "required when ingress.enabled is true"))
    if not ui.ingress.enabled:
        for key, value in (
            ("host", ui.ingress.host),
            ("className", ui.ingress.class_name),
            ("tlsSecretName", ui.ingress.tls_secret_name),
        ):
            if value:
                out.append(Problem(("openWebui", "ingress", key), "only allowed when ingress.enabled is true"))
    mon = cfg.monitoring
    if mon.enabled and "grafanaAdminPassword" not in secrets_present:
        out.append(_missing_secret("grafanaAdminPassword", "monitoring.enabled"))
    if mon.enabled and mon.namespace == cfg.namespace:
        out.append(
            Problem(
                ("monitoring", "namespace"),
                f"{mon.namespace!r} is also the serving namespace; monitoring needs its own so the groups' "
                "NetworkPolicy can admit it by namespace",
            )
        )
    return out


def check_group(g: InferenceGroup, cfg: PlatformConfig) -> list[Problem]:
    out: list[Problem] = []
    if g.tensor_parallel is not None and g.tensor_parallel != g.total_gpus:
        out.append(
            Problem(
                ("tensorParallel",),
                f"tensorParallel {g.tensor_parallel} must equal nodes x gpusPerNode = {g.nodes} x {g.gpus_per_node} "
                f"= {g.total_gpus} (SGLang shards the model over every GPU of the group)",
            )
        )
    if g.service.type != "ClusterIP" and not cfg.api_access.allowed_cidrs:
        out.append(
            Problem(
                ("service", "type"),
                f"a {g.service.type} Service is reached from outside the pod network, which the group's "
                "NetworkPolicy drops: list the client networks in sglang-platform:apiAccess.allowedCidrs "
                "(e.g. 10.0.0.0/8), or keep ClusterIP",
            )
        )
    if g.ports.http == g.ports.dist_init:
        out.append(Problem(("ports", "distInit"), f"port {g.ports.dist_init} is also ports.http; the two must differ"))

    shm, memory = parse_quantity(g.resources.shm_size), parse_quantity(g.resources.memory)
    if shm >= memory:
        out.append(
            Problem(
                ("resources", "shmSize"),
                f"{g.resources.shm_size} must be below resources.memory ({g.resources.memory}): "
                "a memory-backed /dev/shm counts against the pod's memory limit",
            )
        )

    vol = g.model_volume
    if vol.type == "hostPath" and not vol.host_path:
        out.append(Problem(("modelVolume", "hostPath"), "required when type is hostPath"))
    if vol.type == "pvc" and not vol.claim_name:
        out.append(Problem(("modelVolume", "claimName"), "required when type is pvc"))
    if vol.type == "hostPath" and vol.claim_name:
        out.append(Problem(("modelVolume", "claimName"), "only allowed when type is pvc"))
    if vol.type == "pvc" and vol.host_path:
        out.append(Problem(("modelVolume", "hostPath"), "only allowed when type is hostPath"))

    net = g.network
    if net.fabric == "infiniband":
        if not net.hcas:
            out.append(Problem(("network", "hcas"), "fabric infiniband needs the HCAs NCCL may use (e.g. [mlx5_0])"))
        if net.rdma_devices_per_node < 1:
            out.append(
                Problem(
                    ("network", "rdmaDevicesPerNode"),
                    "fabric infiniband needs at least 1 (without an RDMA device NCCL silently falls back to TCP)",
                )
            )
    else:
        for key, value in (
            ("hcas", net.hcas),
            ("gidIndex", net.gid_index),
            ("gdrLevel", net.gdr_level),
            ("rdmaDevicesPerNode", net.rdma_devices_per_node),
        ):
            if value:
                out.append(Problem(("network", key), "only allowed with fabric infiniband"))

    release = cfg.versions.sglang_release
    if g.dist_timeout_seconds is not None and release is not None and release < FLAG_SINCE["--dist-timeout"]:
        out.append(
            Problem(
                ("distTimeoutSeconds",),
                f"--dist-timeout needs SGLang {FLAG_SINCE['--dist-timeout']} or later; the pinned release is "
                f"{release} (sglang-platform:versions.sglangImage)",
            )
        )
    out += _check_extra_args(g.extra_args)
    return out


def _check_extra_args(args: list[str]) -> list[Problem]:
    out = []
    for j, arg in enumerate(args):
        loc = ("extraArgs", j)
        if not arg.startswith("--"):
            # A value belongs to the flag before it; a bare word first is an error.
            if j == 0 or not args[j - 1].startswith("--") or "=" in args[j - 1]:
                out.append(Problem(loc, f"{arg!r} is neither a --flag nor the value of the flag before it"))
            continue
        flag = arg.split("=", 1)[0]
        if len(flag) < 3:
            out.append(Problem(loc, f"{arg!r} is not a flag name"))
            continue
        # argparse accepts any unambiguous prefix, so --tp would set --tp-size behind the typed field.
        clashes = [m for m in MANAGED_FLAGS if m.startswith(flag)]
        if clashes:
            out.append(
                Problem(
                    loc,
                    f"{flag} would override {clashes[0]}, which the platform sets from typed settings; "
                    "use the typed key instead",
                )
            )
    return out
