"""Every rule over a whole stack, in order (``check_platform``), and the two that span it: the release pins
against the image tags, and unique names. Run once the schema's field rules pass."""

from __future__ import annotations

from collections import Counter

from ..config.errors import Problem
from ..config.stack import PlatformConfig, Versions, release_contradiction
from ..render.charts import check_charts
from .addons import check_addons
from .autoscaling import check_autoscaling
from .benchmark import check_benchmark
from .compat import check_compat
from .disaggregation import check_disaggregation, pd_unsupported
from .drivers import check_drivers
from .flags import check_release_table, release_key
from .front_end import check_front_end
from .gateway import check_gateway
from .gpus import check_gpus
from .groups import check_group
from .nodes import check_node_shapes
from .secrets import check_secrets


def check_platform(cfg: PlatformConfig, secrets_present: set[str], notes: list[str] | None = None) -> list[Problem]:
    """Every rule over the stack's values alone (the loader adds those that read sizes or config.json).
    Warnings (an add-on Kubernetes version no release claims yet) are appended to ``notes``."""
    problems: list[Problem] = check_secrets(cfg, secrets_present)
    if cfg.versions.sglang_release is None:
        problems.append(
            Problem(
                ("versions", "sglangVersion"),
                f"cannot tell the SGLang release of {cfg.versions.sglang_image!r}: set versions.sglangVersion "
                "(e.g. 0.4.3.post2) so flags can be checked against it",
            )
        )
    problems += check_release_pins(cfg.versions)
    problems += check_release_table(cfg.versions)
    problems += _unique_names(cfg)
    problems += check_disaggregation(cfg)
    # Without PD in the pinned release, check_disaggregation says so once: not again per PD flag.
    no_pd = pd_unsupported(cfg.versions)
    for unit in cfg.serving_units:
        found = check_group(
            unit.group,
            allowed_cidrs=cfg.api_access.allowed_cidrs,
            sglang_release=cfg.versions.sglang_release,
            release_key=release_key(cfg.versions),
        )
        if no_pd and unit.role is not None:
            found = [p for p in found if p.loc[:1] != ("disaggregation",)]
        # The roles of a service share most keys: one line for a problem both have.
        problems += [p for p in (Problem(unit.loc(p.loc), p.message) for p in found) if p not in problems]
    problems += check_gpus(cfg)
    problems += check_node_shapes(cfg)
    problems += check_front_end(cfg)
    problems += check_gateway(cfg)
    problems += check_addons(cfg)
    problems += check_charts(cfg)
    problems += check_autoscaling(cfg)
    problems += check_benchmark(cfg)
    found, warnings = check_compat(cfg)
    problems += found
    found, driver_warnings = check_drivers(cfg)
    problems += found
    if notes is not None:
        notes += warnings + driver_warnings
    return problems


def check_release_pins(versions: Versions) -> list[Problem]:
    """sglangVersion and gatewayVersion say which release a digest (or a tag without one) runs; next to a tag
    that names a release they could only disagree with it, and the flags and probes would follow the wrong
    one."""
    out = []
    pins = (
        ("sglangVersion", versions.sglang_version, "sglangImage", versions.sglang_image),
        ("gatewayVersion", versions.gateway_version, "gatewayImage", versions.gateway_image),
    )
    for version_key, version, image_key, image in pins:
        tagged = release_contradiction(version, image)
        if tagged is not None:
            out.append(
                Problem(
                    ("versions", version_key),
                    f"{version} contradicts versions.{image_key} {image!r}, whose tag names {tagged}: remove "
                    f"versions.{version_key} (it is only for digests and tags that name no release)",
                )
            )
    return out


def _unique_names(cfg: PlatformConfig) -> list[Problem]:
    problems = []
    for key, label in ((("name",), "group name"), (("model", "servedName"), "served model name")):
        values = [g.name if key == ("name",) else g.model.served_name for g in cfg.inference_groups]
        for value, count in Counter(values).items():
            if count > 1:
                problems += [
                    Problem(
                        ("inferenceGroups", i, *key),
                        f"{label} {value!r} is used by {count} groups; each must be unique",
                    )
                    for i, v in enumerate(values)
                    if v == value
                ]
    # A role runs as <service>-<role>: a LeaderWorkerSet of that name must not exist twice.
    names = {g.name: i for i, g in enumerate(cfg.inference_groups)}
    for unit in cfg.serving_units:
        if unit.role is not None and unit.group.name in names:
            problems.append(
                Problem(
                    ("inferenceGroups", names[unit.group.name], "name"),
                    f"{unit.group.name!r} is the {unit.role} role of the disaggregated service "
                    f"{unit.service.name!r} (its LeaderWorkerSet); rename one of the two",
                )
            )
    return problems
