"""Add-on releases against Kubernetes versions, and features by release."""

from __future__ import annotations

import pytest
from conftest import stack_values

from sglang_platform.facts import bom
from sglang_platform.facts.compat import WINDOWS, addon_supports, missing_features, newest_supporting, window_of
from sglang_platform.rules.compat import check_addon_kubernetes, check_features

PROD_KUBE = stack_values("prod")["versions"]["kubernetes"]  # 1.30.6, the reference cluster
SIM_KUBE = "1.36.3"  # the e2e engine's kube-apiserver


ADDON_KEYS = {
    "keda": "kedaChart",
    "volcano": "volcanoChart",
    "gpu-operator": "gpuOperatorChart",
    "lws": "lwsChart",
    "kube-prometheus-stack": "kubePrometheusStack",
}


def verdicts_of(pins: dict[str, str], kubernetes: str) -> dict[str, str]:
    return {addon: addon_supports(addon, pins[key], kubernetes).verdict for addon, key in ADDON_KEYS.items()}


def test_every_addon_of_the_current_set_supports_its_kubernetes():
    """dev (and any stack that names no set) installs the current set's add-ons on its Kubernetes: each one claims
    it, so no stack on defaults is refused for an add-on it installs."""
    assert bom.CURRENT["kubernetes"] == bom.KUBERNETES_VERSION
    assert set(verdicts_of(bom.CURRENT, bom.KUBERNETES_VERSION).values()) == {"supported"}


def test_the_reference_set_on_the_reference_kubernetes():
    """The reference set is the reference deployment's versions: its own Volcano 1.9.0 does not claim its
    Kubernetes 1.30 (the reference ran it anyway), so a stack on it that installs Volcano pins 1.10.x, as prod
    does; every other add-on of the set claims 1.30."""
    assert bom.REFERENCE["kubernetes"] == PROD_KUBE
    assert verdicts_of(bom.REFERENCE, PROD_KUBE) == {
        "keda": "supported",
        "volcano": "above",
        "gpu-operator": "supported",
        "lws": "supported",
        "kube-prometheus-stack": "supported",
    }
    prod = stack_values("prod")["versions"]
    assert verdicts_of({**bom.REFERENCE, **prod}, PROD_KUBE) == dict.fromkeys(ADDON_KEYS, "supported")


def test_the_current_set_does_not_fit_the_reference_kubernetes():
    """Why prod stays on the reference set: today's KEDA and GPU Operator start at 1.33."""
    assert verdicts_of(bom.CURRENT, PROD_KUBE) == {
        "keda": "below",
        "volcano": "supported",
        "gpu-operator": "below",
        "lws": "supported",
        "kube-prometheus-stack": "supported",
    }


def test_what_supports_kubernetes_1_30():
    assert addon_supports("keda", "2.17.2", PROD_KUBE).verdict == "supported"
    assert addon_supports("keda", "2.20.2", PROD_KUBE).claiming == ("2.15", "2.16", "2.17")
    assert newest_supporting("keda", PROD_KUBE) == "2.17"
    assert addon_supports("volcano", "1.10.2", PROD_KUBE).verdict == "supported"
    assert newest_supporting("volcano", PROD_KUBE) == "1.15"
    assert newest_supporting("gpu-operator", PROD_KUBE) == "25.10"


def test_refusal_names_the_key_and_the_fix():
    (problem,), warnings = check_addon_kubernetes("keda", "2.20.2", PROD_KUBE)
    assert warnings == []
    assert problem.loc == ("versions", "kedaChart")
    assert problem.message == (
        "KEDA 2.20.2 is tested on Kubernetes 1.33-1.35 (keda.sh/docs/2.20/operate/cluster), not 1.30 "
        "(versions.kubernetes): pin a release of 2.15, 2.16 or 2.17 in sglang-platform:versions.kedaChart"
    )
    (volcano,), _ = check_addon_kubernetes("volcano", "1.9.0", PROD_KUBE)
    assert volcano.message.endswith(
        "pin a release of 1.10, 1.11, 1.12, 1.13, 1.14 or 1.15 in sglang-platform:versions.volcanoChart"
    )


def test_kubernetes_older_than_the_release():
    (problem,), _ = check_addon_kubernetes("lws", "0.10.0", "1.25.3")
    assert problem.message == (
        "LeaderWorkerSet 0.10.0 supports Kubernetes 1.26 or newer (kubernetes-sigs/lws "
        "site/content/en/docs/installation/_index.md), not 1.25 (versions.kubernetes): no LeaderWorkerSet release "
        "in the table does: run Kubernetes 1.26 or newer"
    )
    assert addon_supports("gpu-operator", "v25.10.1", PROD_KUBE).verdict == "supported"
    assert addon_supports("gpu-operator", "v26.3.0", PROD_KUBE).verdict == "below"


def test_a_kubernetes_no_release_claims_yet_is_a_warning():
    problems, (warning,) = check_addon_kubernetes("keda", "2.20.2", SIM_KUBE)
    assert problems == []
    assert warning == (
        "no KEDA release claims Kubernetes 1.36 yet: 2.20.2 is tested on 1.33-1.35, the newest line (2.20) on "
        "1.33-1.35 (keda.sh/docs/2.20/operate/cluster); proceeding, the live checks verify the APIs"
    )
    # But an old pin on a new cluster that a newer release claims is refused.
    (problem,), _ = check_addon_kubernetes("gpu-operator", "v24.9.1", SIM_KUBE)
    assert "pin a release of 26.3" in problem.message


def test_patches_that_widen_a_window():
    assert window_of("gpu-operator", "v25.10.0").kube_max == (1, 34)  # type: ignore[union-attr]
    assert window_of("gpu-operator", "v25.10.1").kube_max == (1, 35)  # type: ignore[union-attr]
    assert addon_supports("gpu-operator", "v26.3.1", SIM_KUBE).verdict == "above"
    assert addon_supports("gpu-operator", "v26.3.2", SIM_KUBE).verdict == "supported"
    assert addon_supports("gpu-operator", "v26.7.0", SIM_KUBE).verdict == "supported"


def test_unknown_releases_and_versions_are_not_refused():
    assert check_addon_kubernetes("keda", "2.99.0", PROD_KUBE)[0] == []
    assert "not in the compatibility table" in check_addon_kubernetes("keda", "2.99.0", PROD_KUBE)[1][0]
    assert addon_supports("keda", "2.17.2", "latest").verdict == "unknown"


@pytest.mark.parametrize("addon", sorted(WINDOWS))
def test_every_window_has_a_source_and_is_ordered(addon):
    for window in WINDOWS[addon]:
        assert window.source
        assert window.kube_max is None or window.kube_min <= window.kube_max


def test_features_by_release():
    assert [f.name for f in missing_features("keda", "2.16.1", ["fallbackBehavior"])] == ["fallbackBehavior"]
    assert missing_features("keda", "2.17.0", ["fallbackBehavior"]) == []
    (problem,) = check_features("lws", "0.5.1", {"gangScheduling": ("lws", "gangScheduling")})
    assert problem.loc == ("versions", "lwsChart")
    assert problem.message.startswith(
        "LeaderWorkerSet 0.5.1 lacks gangScheduling, which lws.gangScheduling uses: it arrives in 0.7.0"
    )
    assert check_features("lws", "0.10.0", {"RecreateGroupAfterStart": ("inferenceGroups", 0, "restartPolicy")}) == []
