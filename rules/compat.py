"""Add-on versions against the stack's Kubernetes version (``versions.kubernetes``) and the features the stack
uses, from the table in ``facts.compat`` (its module docstring says what is refused and what is a warning).

Checked: what the stack installs (``mode: install``) and, for LeaderWorkerSet, the release the cluster runs
(``lws.mode: present`` declares it in ``versions.lwsChart``); the versions of add-ons the cluster runs are
otherwise read by the live checks, not declared.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config.errors import PROJECT, Loc, Problem, key_path
from ..config.stack import PlatformConfig
from ..facts.compat import ADDON_KEYS, ADDON_NAMES, FEATURES, WINDOWS, addon_supports, kube_minor, missing_features


def _minor_text(kube: str) -> str:
    minor = kube_minor(kube)
    return "{}.{}".format(*minor) if minor else kube


def _claimed_from(addon: str, line: str, kubernetes: str) -> str:
    """``26.3`` when the whole line claims the version, ``26.3.2 or a later 26.3`` when only later patches do."""
    kube = kube_minor(kubernetes)
    claims = [
        w
        for w in WINDOWS[addon]
        if w.line == line and kube is not None and w.kube_min <= kube and (w.kube_max is None or kube <= w.kube_max)
    ]
    if any(w.since is None for w in claims):
        return line
    since = min((w.since for w in claims if w.since), key=lambda text: tuple(int(x) for x in text.split(".")))
    return f"{since} or a later {line}"


def check_addon_kubernetes(addon: str, version: str, kubernetes: str) -> tuple[list[Problem], list[str]]:
    """(problems, warnings) for one add-on pinned at ``version`` on Kubernetes ``kubernetes``. Problems sit at
    the add-on's version key; warnings are for the notes of the run."""
    name = ADDON_NAMES[addon]
    version_loc, _ = ADDON_KEYS[addon]
    key = ".".join(str(p) for p in version_loc)
    support = addon_supports(addon, version, kubernetes)
    window = support.window
    kube = _minor_text(kubernetes)
    if support.verdict == "supported":
        return [], []
    if support.verdict == "unknown":
        return [], [
            f"{name} {version} is not in the compatibility table (facts/compat.py): its support of Kubernetes "
            f"{kube} was not checked"
        ]
    assert window is not None
    if support.verdict == "unclaimed":
        newest = WINDOWS[addon][-1]
        return [], [
            f"no {name} release claims Kubernetes {kube} yet: {version} is tested on {window.text}, the newest "
            f"line ({newest.line}) on {newest.text} ({newest.source}); proceeding, the live checks verify the APIs"
        ]
    lines = [_claimed_from(addon, line, kubernetes) for line in support.claiming]
    if lines:
        listed = ", ".join(lines[:-1]) + " or " + lines[-1] if len(lines) > 1 else lines[0]
        fix = f"pin a release of {listed} in sglang-platform:{key}"
    else:
        fix = f"no {name} release in the table does: run Kubernetes {window.text}"
    why = "supports Kubernetes" if window.kube_max is None else "is tested on Kubernetes"
    return [
        Problem(
            version_loc,
            f"{name} {version} {why} {window.text} ({window.source}), not {kube} (versions.kubernetes): {fix}",
        )
    ], []


def check_features(addon: str, version: str, needed: Mapping[str, Loc]) -> list[Problem]:
    """``needed`` maps feature names to the stack key that makes the stack use them."""
    out = []
    version_loc, _ = ADDON_KEYS[addon]
    for feature in missing_features(addon, version, list(needed)):
        using = key_path(needed[feature.name]).removeprefix(f"{PROJECT}:")
        out.append(
            Problem(
                version_loc,
                f"{ADDON_NAMES[addon]} {version} lacks {feature.name}, which {using} uses: it arrives in "
                f"{feature.since} ({feature.evidence}); pin {feature.since} or later",
            )
        )
    return out


def pinned_addons(cfg: PlatformConfig) -> list[tuple[str, str]]:
    """(add-on, version) of every add-on whose version the stack pins for the cluster."""
    v = cfg.versions
    out = []
    if cfg.gpu_operator.mode == "install":
        out.append(("gpu-operator", v.gpu_operator_chart))
    if cfg.volcano.mode == "install":
        out.append(("volcano", v.volcano_chart))
    if cfg.lws.mode in ("install", "present"):
        out.append(("lws", v.lws_chart))
    if cfg.keda.mode == "install":
        out.append(("keda", v.keda_chart))
    if cfg.monitoring.enabled:
        out.append(("kube-prometheus-stack", v.kube_prometheus_stack))
    return out


def features_used(cfg: PlatformConfig) -> dict[str, dict[str, Loc]]:
    """By add-on: the features of facts.compat.FEATURES the stack's objects use, with the key that uses them
    (LWS's gang scheduling and kept CRDs are refused by rules.addons, with their own messages)."""
    used: dict[str, dict[str, Loc]] = {}
    for unit in cfg.serving_units:
        if unit.group.autoscaling is not None and unit.role != "decode":
            # components/autoscaling.py sets fallback.behavior on every ScaledObject but decode's (no
            # AverageValue trigger: has_fallback).
            used.setdefault("keda", {}).setdefault("fallbackBehavior", unit.loc(("autoscaling",)))
    return used


def check_compat(cfg: PlatformConfig) -> tuple[list[Problem], list[str]]:
    """(problems, warnings). With ``preflight.compatibility`` false the problems come back as warnings."""
    problems: list[Problem] = []
    warnings: list[str] = []
    kube = cfg.versions.kubernetes
    for addon, version in pinned_addons(cfg):
        found, notes = check_addon_kubernetes(addon, version, kube)
        problems += found
        warnings += notes
        if addon == "keda" and cfg.keda.mode == "install":
            problems += check_features(addon, version, features_used(cfg).get(addon, {}))
    if not cfg.preflight.compatibility:
        warnings += [
            f"{p.key}: {p.message} (not refused: sglang-platform:preflight.compatibility is false)" for p in problems
        ]
        problems = []
    return problems, warnings


def compatibility_table() -> str:
    """The table of facts.compat as markdown, for docs/configuration.md."""
    lines = ["| add-on | release line | Kubernetes | source |", "|---|---|---|---|"]
    for addon, windows in WINDOWS.items():
        for w in windows:
            line = f"{w.line} (from {w.since})" if w.since else ("every release" if w.line in ("0", "*") else w.line)
            lines.append(f"| {ADDON_NAMES[addon].removeprefix('the ')} | {line} | {w.text} | {w.source} |")
    lines += ["", "| add-on | feature | since | evidence |", "|---|---|---|---|"]
    for f in FEATURES.values():
        lines.append(f"| {ADDON_NAMES[f.addon].removeprefix('the ')} | {f.name} | {f.since} | {f.evidence} |")
    return "\n".join(lines)
