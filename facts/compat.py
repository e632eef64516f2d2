"""Versions that work together: each add-on release line against the Kubernetes versions its project says it
supports, and the features the stack relies on by the release that brought them. A leaf of data and lookups;
the rules over a stack are ``rules.compat``, and docs/configuration.md prints this table
(tools/config_reference.py).

Sources (each row below repeats the one it comes from):
- KEDA: "Kubernetes Compatibility", https://keda.sh/docs/2.20/operate/cluster/ (kedacore/keda-docs
  content/docs/2.20/operate/cluster.md): "the Kubernetes versions tested for each KEDA version", N-2 policy.
- Volcano: volcano-sh/volcano README "Kubernetes compatibility" (read at commit 606c628d for v1.10-v1.15 and
  at a v1.11-era commit for v1.6-v1.9); a tick means "Volcano and the Kubernetes version are exactly
  compatible", a dash "The Kubernetes version has features or API objects that Volcano can't use".
- NVIDIA GPU Operator: NVIDIA/cloud-native-docs gpu-operator/platform-support.rst, "Supported Operating
  Systems and Kubernetes Platforms", at the commit of each release's docs (named per row).
- LeaderWorkerSet: site/content/en/docs/installation/_index.md (v0.6.0 .. v0.10.0): "A Kubernetes cluster with
  version >= 1.26 is Required"; no upper bound is stated.
- kube-prometheus-stack: Chart.yaml ``kubeVersion: '>=1.25.0-0'`` of 88.3.0 and 88.5.3 (their values.yaml), which
  Helm enforces; prometheus-operator >= 0.84 needs 1.25 for CEL in its CRDs. No upper bound is stated.

Every add-on pin of both version sets (facts/bom.py) has a window here (tests/test_bom.py).

A Kubernetes version newer than every window of an add-on is *unclaimed*, not refused: the windows are the
versions each release was tested on, published months after Kubernetes ships (KEDA 2.20 stops at 1.35 while
the e2e cluster runs 1.36.3), no release claims it yet, so refusing would leave no pin to fix it with, and the
live checks (rules.cluster) still verify at preview that the APIs the stack uses are served. It is a
warning naming the newest window. A version some release claims and the pinned one does not is refused, with
the releases that do claim it as the fix; so is one below the pinned release's minimum. A stack that must run
an add-on outside its window anyway (a simulated cluster with a mirror of older charts) sets
``preflight.compatibility: false``, which turns those refusals into warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

# A stack key as a path of keys, like config.errors.Loc (facts import nothing of the stack).
Loc = tuple[str, ...]

Minor = tuple[int, int]


@dataclass(frozen=True)
class Window:
    """Kubernetes minors ``kube_min`` .. ``kube_max`` (None: no upper bound stated) claimed by every release
    of ``line`` from ``since`` on (a later patch may widen its line's window)."""

    line: str
    kube_min: Minor
    kube_max: Minor | None
    source: str
    since: str | None = None

    @property
    def text(self) -> str:
        low = "{}.{}".format(*self.kube_min)
        return f"{low} or newer" if self.kube_max is None else f"{low}-" + "{}.{}".format(*self.kube_max)


KEDA_DOCS = "keda.sh/docs/2.20/operate/cluster"
VOLCANO_README = "volcano-sh/volcano README, Kubernetes compatibility (606c628d)"
VOLCANO_README_OLD = "volcano-sh/volcano README, Kubernetes compatibility (v1.11 era)"
GPU_DOCS = "NVIDIA/cloud-native-docs gpu-operator/platform-support.rst"

WINDOWS: Mapping[str, Sequence[Window]] = {
    "keda": tuple(
        Window(line, (1, lo), (1, hi), KEDA_DOCS)
        for line, lo, hi in (
            ("2.7", 17, 25),
            ("2.8", 17, 25),
            ("2.9", 23, 25),
            ("2.10", 24, 26),
            ("2.11", 25, 27),
            ("2.12", 26, 28),
            ("2.13", 27, 29),
            ("2.14", 27, 29),
            ("2.15", 28, 30),
            ("2.16", 29, 31),
            ("2.17", 30, 32),
            ("2.18", 31, 33),
            ("2.19", 32, 34),
            ("2.20", 33, 35),
        )
    ),
    "volcano": (
        Window("1.6", (1, 17), (1, 23), VOLCANO_README_OLD),
        Window("1.7", (1, 19), (1, 28), VOLCANO_README_OLD),
        Window("1.8", (1, 19), (1, 28), VOLCANO_README_OLD),
        Window("1.9", (1, 21), (1, 29), VOLCANO_README_OLD),
        Window("1.10", (1, 21), (1, 30), VOLCANO_README),
        Window("1.11", (1, 21), (1, 31), VOLCANO_README),
        Window("1.12", (1, 21), (1, 32), VOLCANO_README),
        Window("1.13", (1, 23), (1, 33), VOLCANO_README),
        Window("1.14", (1, 23), (1, 34), VOLCANO_README),
        Window("1.15", (1, 24), (1, 35), VOLCANO_README),
    ),
    "gpu-operator": (
        Window("24.9", (1, 24), (1, 31), GPU_DOCS + " at 73575d6d (GPU Operator 24.9.1)"),
        Window("25.3", (1, 29), (1, 32), GPU_DOCS + " at 04c2f6e1 (25.3.0)"),
        Window("25.3", (1, 29), (1, 33), GPU_DOCS + " at 7185608a (25.3.3)", since="25.3.1"),
        Window("25.10", (1, 30), (1, 34), GPU_DOCS + " at 3e11d275 (25.10.0)"),
        Window(
            "25.10", (1, 30), (1, 35), GPU_DOCS + " at a5b94d57 ('Kubernetes v1.35 ... v25.10.1 and later')", "25.10.1"
        ),
        Window("26.3", (1, 32), (1, 35), GPU_DOCS + " at adfe9224 (26.3.0)"),
        Window("26.3", (1, 32), (1, 36), GPU_DOCS + " at de99f9d3 (26.3.2)", since="26.3.2"),
        # 26.7.x is the supported major (the docs' life-cycle table: "26.7.x Supported, 26.3.x Deprecated, 25.10.x
        # and lower End of Support"); its platform table validates Kubernetes 1.33-1.36.
        Window("26.7", (1, 33), (1, 36), GPU_DOCS + " for 26.7.x (26.7.0)"),
    ),
    "lws": (Window("0", (1, 26), None, "kubernetes-sigs/lws site/content/en/docs/installation/_index.md"),),
    "kube-prometheus-stack": (
        Window("*", (1, 25), None, "kube-prometheus-stack Chart.yaml kubeVersion >=1.25.0-0 (88.3.0, 88.5.3)"),
    ),
}
# Stack keys of each add-on: where its version is pinned, where its mode is set.
ADDON_KEYS: Mapping[str, tuple[Loc, Loc | None]] = {
    "keda": (("versions", "kedaChart"), ("keda", "mode")),
    "volcano": (("versions", "volcanoChart"), ("volcano", "mode")),
    "gpu-operator": (("versions", "gpuOperatorChart"), ("gpuOperator", "mode")),
    "lws": (("versions", "lwsChart"), ("lws", "mode")),
    "kube-prometheus-stack": (("versions", "kubePrometheusStack"), ("monitoring", "enabled")),
}
ADDON_NAMES = {
    "keda": "KEDA",
    "volcano": "Volcano",
    "gpu-operator": "the GPU Operator",
    "lws": "LeaderWorkerSet",
    "kube-prometheus-stack": "kube-prometheus-stack",
}


def parse_version(text: str) -> Version | None:
    try:
        return Version(text.strip().removeprefix("v"))
    except InvalidVersion:
        return None


def kube_minor(text: str) -> Minor | None:
    version = parse_version(text)
    if version is None or len(version.release) < 2:
        return None
    return version.release[0], version.release[1]


def _line_of(addon: str, version: Version) -> str:
    if addon == "lws":
        return "0"
    if addon == "kube-prometheus-stack":
        return "*"
    return f"{version.release[0]}.{version.release[1]}"


def window_of(addon: str, version: str) -> Window | None:
    """The window claimed for ``version`` (a chart or release version such as ``v24.9.1`` or ``2.17.2``)."""
    parsed = parse_version(version)
    if parsed is None:
        return None
    line = _line_of(addon, parsed)
    found = None
    for window in WINDOWS.get(addon, ()):
        if window.line == line and (window.since is None or parsed >= Version(window.since)):
            found = window
    return found


# Where the Kubernetes version falls against the pinned release's window.
Verdict = Literal["supported", "below", "above", "unclaimed", "unknown"]


@dataclass(frozen=True)
class Support:
    verdict: Verdict
    window: Window | None
    # Lines whose window includes the Kubernetes version (the fix when the verdict is below / above).
    claiming: tuple[str, ...] = ()


def addon_supports(addon: str, version: str, kubernetes: str) -> Support:
    """Whether ``addon`` at ``version`` claims Kubernetes ``kubernetes`` (e.g. ``1.30.6``)."""
    window, kube = window_of(addon, version), kube_minor(kubernetes)
    if kube is None:
        return Support("unknown", window)
    claiming = tuple(
        dict.fromkeys(
            w.line for w in WINDOWS.get(addon, ()) if w.kube_min <= kube and (w.kube_max is None or kube <= w.kube_max)
        )
    )
    if window is None:
        return Support("unknown", None, claiming)
    if kube < window.kube_min:
        return Support("below", window, claiming)
    if window.kube_max is not None and kube > window.kube_max:
        return Support("above" if claiming else "unclaimed", window, claiming)
    return Support("supported", window, claiming)


# --- features by release ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    addon: str
    name: str
    since: str
    evidence: str

    @property
    def version(self) -> Version:
        return Version(self.since)


FEATURES: Mapping[str, Feature] = {
    f.name: f
    for f in (
        Feature("lws", "subGroupPolicyType", "0.6.0", "LWS CRD leaderWorkerTemplate.subGroupPolicy.subGroupPolicyType"),
        Feature(
            "lws",
            "gangScheduling",
            "0.7.0",
            "controller config gangSchedulingManagement.schedulerProvider (lws#498; chart value of the same name)",
        ),
        Feature(
            "lws", "rollingUpdatePartition", "0.7.0", "LWS CRD rolloutStrategy.rollingUpdateConfiguration.partition"
        ),
        Feature(
            "lws", "crdsKeptOnUpgrade", "0.8.0", "chart CRDs moved to crds/, Helm never deletes them (lws#718, #880)"
        ),
        Feature("lws", "volumeClaimTemplates", "0.8.0", "LWS CRD leaderWorkerTemplate.volumeClaimTemplates"),
        Feature("lws", "RecreateGroupAfterStart", "0.9.0", "LWS CRD restartPolicy enum (lws#757)"),
        Feature("lws", "DisaggregatedSet", "0.9.0", "CRD disaggregatedsets.disaggregatedset.x-k8s.io (KEP-766)"),
        Feature(
            "keda",
            "fallbackBehavior",
            "2.17.0",
            "ScaledObject CRD spec.fallback.behavior (absent in v2.16.1, enum in v2.17.0; Go module "
            "github.com/kedacore/keda/v2 config/crd/bases/keda.sh_scaledobjects.yaml)",
        ),
        Feature(
            "keda",
            "metricsServerSwitch",
            "2.20.0",
            "chart value metricsServer.enabled (kedacore/charts keda/templates/metrics-server, from 2.20.0)",
        ),
    )
}


def missing_features(addon: str, version: str, needed: Sequence[str]) -> list[Feature]:
    parsed = parse_version(version)
    if parsed is None:
        return []
    return [FEATURES[n] for n in needed if FEATURES[n].addon == addon and parsed < Version(FEATURES[n].since)]


def newest_supporting(addon: str, kubernetes: str) -> str | None:
    """The newest line in the table whose window includes ``kubernetes`` (for messages and the README)."""
    support = addon_supports(addon, "0.0.0", kubernetes)
    return support.claiming[-1] if support.claiming else None
