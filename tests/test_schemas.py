"""Every rendered object validates as an API server of the stack's Kubernetes version would see it."""

from __future__ import annotations

import copy

import pytest
from conftest import SHARED, unavailable

from tools import harness, k8s_schemas, security_scan


# Module-scoped so it runs before the module fixtures below, which read the CRDs.
@pytest.fixture(autouse=True, scope="module")
def _shared_crds():
    if not (SHARED / "crds").is_dir():
        unavailable("../shared/crds (upstream CRDs) is absent: custom resources cannot be checked")


@pytest.fixture(scope="module")
def schemas(stack):
    _, _, platform = stack
    path, _ = k8s_schemas.lws_crd_file(platform)
    return k8s_schemas.load_custom_schemas(path)


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


def test_the_lws_crd_follows_the_pin(stack):
    _, _, platform = stack
    path, note = k8s_schemas.lws_crd_file(platform)
    pin = k8s_schemas.lws_pin(platform)
    if pin is None:
        assert note.endswith("(newest CRD available: the stack pins no LWS version)")
    else:
        assert path.name == f"lws-v{pin}.yaml"


def test_a_pin_without_its_crd_is_an_error(tmp_path):
    (tmp_path / "lws-v0.7.0.yaml").write_text("")

    class Pinned:
        class versions:  # noqa: N801 - stands in for the Versions model
            @staticmethod
            def model_dump():
                return {"lws": "0.99.0"}

    with pytest.raises(
        FileNotFoundError, match=r"pins LWS 0\.99\.0 but .* has no lws-v0\.99\.0\.yaml \(have: lws-v0\.7\.0\.yaml\)"
    ):
        k8s_schemas.lws_crd_file(Pinned(), tmp_path)


@pytest.fixture(scope="module")
def prod_schemas():
    path, _ = k8s_schemas.lws_crd_file(None)
    return k8s_schemas.load_custom_schemas(path)


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
        "Widget w: no schema for example.com/v1 Widget: neither a built-in kind of Kubernetes 1.30.6 nor a CRD in "
        "../shared/crds (add the upstream CRD of the pinned version)"
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
