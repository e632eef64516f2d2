"""Every rendered object validates as an API server of the stack's Kubernetes version would see it."""

from __future__ import annotations

import copy
import re

import pytest
from conftest import API_KEY, REQUIRED_SECRETS, run_with, stack_values

from sglang_platform.config import PlatformConfig, validate
from sglang_platform.facts import bom
from tools import crds, harness, k8s_schemas, security_scan


@pytest.fixture(scope="module")
def schemas(stack):
    _, _, platform = stack
    return k8s_schemas.load_custom_schemas(k8s_schemas.stack_crd_files(platform))


def test_every_object_validates_strictly(stack, schemas):
    _, result, platform = stack
    objects = harness.kubernetes_objects(result)
    assert objects
    assert k8s_schemas.validate_all(objects, platform.versions.kubernetes, schemas) == []


def test_custom_resource_pod_templates_are_valid_pods(stack, schemas):
    """The CRD embeds the PodTemplateSpec of the Kubernetes LWS was built with; the cluster's own schema
    must accept the templates too."""
    _, result, platform = stack
    workloads = security_scan.template_workloads(harness.kubernetes_objects(result))
    assert workloads, "no pod templates found in custom resources"
    assert k8s_schemas.validate_all(workloads, platform.versions.kubernetes, schemas) == []


def test_the_crds_follow_the_pins(stack):
    """Each stack is checked against the releases it pins, read from its own versions (the BOM's only where it
    pins none), one file per CRD."""
    _, _, platform = stack
    v = platform.versions
    expected = {
        "lws": v.lws_chart,
        "volcano": v.volcano_chart,
        "keda": v.keda_chart,
        "prom": crds.KUBE_PROMETHEUS_STACK_OPERATOR[v.kube_prometheus_stack],
    }
    files = k8s_schemas.stack_crd_files(platform)
    assert {crds.identify(p.name)[0].key: crds.identify(p.name)[1] for p in files} == {
        k: crds.release(x) for k, x in expected.items()
    }
    assert len({p.name for p in files}) == len(files)


def test_prod_pins_other_releases_than_the_bom():
    # Otherwise the checks above could not tell a pin followed from a pin ignored.
    platform = validate(stack_values("prod"), REQUIRED_SECRETS)
    committed = stack_values("prod")["versions"]
    assert k8s_schemas.pins(platform)["keda"] == committed["kedaChart"] != bom.KEDA_CHART


def _pinned(versions: dict[str, str]):
    """A stack-values edit that pins ``versions`` (with ``lws`` present for an LWS pin: a chart of LWS < 0.8 is
    refused for install, lws#880, and a cluster that runs such a release is what an older pin means). The
    Kubernetes windows of the add-ons become warnings (preflight.compatibility): KEDA 2.20 on prod's 1.30 is a
    compatibility question (tests/test_compat.py), not a schema one."""

    def mutate(values):
        values["versions"] = {**(values.get("versions") or {}), **versions}
        values["preflight"] = {**(values.get("preflight") or {}), "compatibility": False}
        if "lwsChart" in versions:
            values["lws"] = {**(values.get("lws") or {}), "mode": "present"}

    return mutate


def config_with(name: str, versions: dict[str, str]) -> PlatformConfig:
    values = copy.deepcopy(stack_values(name))
    _pinned(versions)(values)
    return validate(values, REQUIRED_SECRETS)


def _set(obj: dict, path: tuple[str, ...], value) -> dict:
    obj = copy.deepcopy(obj)
    node = obj
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return obj


# (stack, its older pin, the object, a field or value only the newer release's CRD has, the newer pin, what the
# older CRD says): the render of the older pin passes its own CRD; the field passes the newer CRD and fails its own.
NEWER_ONLY = [
    (
        "dev",
        {"lwsChart": "0.7.0"},
        ("LeaderWorkerSet", "qwen-small"),
        ("spec", "leaderWorkerTemplate", "restartPolicy"),
        "RecreateGroupAfterStart",
        {"lwsChart": "0.10.0"},
        "spec.leaderWorkerTemplate.restartPolicy: 'RecreateGroupAfterStart' is not one of",
    ),
    (
        "dev",
        {"lwsChart": "0.7.0"},
        ("LeaderWorkerSet", "qwen-small"),
        ("spec", "leaderWorkerTemplate", "volumeClaimTemplates"),
        [],
        {"lwsChart": "0.10.0"},
        "spec.leaderWorkerTemplate: unknown field(s) volumeClaimTemplates",
    ),
    (
        "prod",
        {},
        ("Queue", "inference"),
        ("spec", "dequeueStrategy"),
        "traverse",
        {"volcanoChart": "1.15.1"},
        "spec: unknown field(s) dequeueStrategy",
    ),
    (
        "prod",
        {},
        ("ScaledObject", "deepseek-r1-autoscaler"),
        ("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "tolerance"),
        "0.1",
        {"kedaChart": "2.20.2"},
        "scaleDown: unknown field(s) tolerance",
    ),
]


@pytest.mark.parametrize(("stack_name", "older", "target", "path", "value", "newer", "refusal"), NEWER_ONLY)
def test_a_pin_is_validated_against_its_own_release(stack_name, older, target, path, value, newer, refusal):
    result = run_with(stack_name, _pinned(older), secrets={"apiKey": API_KEY})
    assert result.error is None, result.error
    objects = harness.kubernetes_objects(result)
    platform = config_with(stack_name, older)
    own = k8s_schemas.load_custom_schemas(k8s_schemas.stack_crd_files(platform))
    kubernetes = platform.versions.kubernetes
    assert k8s_schemas.validate_all(objects, kubernetes, own) == []
    changed = _set(_named(objects, *target), path, value)
    newer_schemas = k8s_schemas.load_custom_schemas(k8s_schemas.stack_crd_files(config_with(stack_name, older | newer)))
    assert k8s_schemas.validate_all([changed], kubernetes, newer_schemas) == []
    (problem,) = k8s_schemas.validate_all([changed], kubernetes, own)
    assert refusal in problem, problem


def test_a_pin_without_its_crd_is_an_error(tmp_path):
    (tmp_path / "lws-v0.7.0.yaml").write_text("")
    platform = validate({**stack_values("dev"), "versions": {"lwsChart": "0.99.0"}}, REQUIRED_SECRETS)
    with pytest.raises(
        FileNotFoundError, match=r"has no lws-v0\.99\.0\.yaml, .* run `python tools/crds\.py refresh lws 0\.99\.0`"
    ):
        k8s_schemas.stack_crd_files(platform, tmp_path)


def test_two_releases_of_one_crd_are_refused():
    files = [crds.CRDS / "volcano-v1.9.0-queues.yaml", crds.CRDS / "volcano-v1.15.1-queues.yaml"]
    with pytest.raises(ValueError, match=re.escape("Queue is in both volcano-v1.9.0-queues.yaml and volcano-v1.15.1")):
        k8s_schemas.load_custom_schemas(files)


@pytest.fixture(scope="module")
def prod_schemas():
    return k8s_schemas.load_custom_schemas(
        k8s_schemas.stack_crd_files(validate(stack_values("prod"), REQUIRED_SECRETS))
    )


@pytest.fixture(scope="module")
def prod_objects():
    from conftest import _cached_run

    return harness.kubernetes_objects(_cached_run("prod", True))


def _named(objects, kind, name):
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return copy.deepcopy(obj)


def _problems(obj, stack_schemas):
    return k8s_schemas.validate_all([obj], "1.30.6", stack_schemas)


def test_unknown_field_in_a_custom_resource_is_caught(prod_objects, prod_schemas):
    lws = _named(prod_objects, "LeaderWorkerSet", "deepseek-r1")
    lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["gpus"] = 8
    lws["spec"]["startupPolicy"] = "WhenReady"
    del lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["name"]
    problems = _problems(lws, prod_schemas)
    assert len(problems) == 3, problems
    assert any(
        "spec.leaderWorkerTemplate.workerTemplate.spec.containers[0]: unknown field(s) gpus" in p for p in problems
    )
    assert any("spec.startupPolicy: 'WhenReady' is not one of" in p for p in problems)
    assert any("'name' is a required property" in p for p in problems)


def test_bad_metadata_of_a_custom_resource_is_caught(prod_objects, prod_schemas):
    lws = _named(prod_objects, "LeaderWorkerSet", "deepseek-r1")
    lws["metadata"]["labelz"] = {}
    assert _problems(lws, prod_schemas) == [
        "LeaderWorkerSet deepseek/deepseek-r1: metadata: unknown field(s) labelz (an API server would reject or "
        "silently prune them) (Kubernetes 1.30 schema)"
    ]


def test_unknown_field_in_a_builtin_object_is_caught(prod_objects, prod_schemas):
    svc = _named(prod_objects, "Service", "deepseek-r1-api")
    svc["spec"]["ports"][0]["targetport"] = 1
    assert _problems(svc, prod_schemas) == [
        "Service deepseek/deepseek-r1-api: spec.ports[0]: unknown field(s) targetport (an API server would reject "
        "or silently prune them) (Kubernetes 1.30 schema)"
    ]


def test_a_custom_resource_without_a_crd_fails(prod_schemas):
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    assert _problems(obj, prod_schemas) == [
        "Widget w: no schema for example.com/v1 Widget: neither a built-in kind of Kubernetes 1.30.6 nor a CRD of "
        "a release the stack pins (third_party/crds; tools/crds.py refresh adds one)"
    ]


def test_preserve_unknown_fields_and_int_or_string_are_honoured():
    schema = k8s_schemas.strict_schema(
        {
            "type": "object",
            "properties": {
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "port": {"x-kubernetes-int-or-string": True},
                "opt": {"type": "string", "nullable": True},
            },
        }
    )
    import jsonschema

    jsonschema.Draft4Validator(schema).validate({"free": {"anything": 1}, "port": "http", "opt": None})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({"port": 1.5})
