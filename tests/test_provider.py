"""The component package (provider/, docs/packages.md): its inputs mirror the stack configuration's types, its
committed schema is the code's, nothing typed in the configuration is untyped in the schema, and a component
constructed through the provider (as a TypeScript, Go or YAML program's is) registers what a Python program's
does, is refused with the same message, and keeps its secrets secret.

Programs run under Pulumi's mocks (tools/harness.py); the provider is called as the engine calls it: construct
with camelCase inputs, every number a double. tests/e2e/test_packages.py runs real YAML and TypeScript programs."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import API_KEY, FRONT_END_SECRETS, ROOT, stack_values

from sglang_platform.config import SECRET_KEYS
from sglang_platform.config.stack import PlatformConfig
from sglang_platform.provider import components as declared
from tools import harness, package_inputs, package_schema

SCHEMA = ROOT / "provider" / "schema.json"
TOKEN = "sglang-platform:index:"

GROUP = {
    "name": "r1",
    "model": {"path": "Qwen2.5-1.5B-Instruct", "servedName": "qwen", "trustRemoteCode": False},
    "modelVolume": {"type": "pvc", "claimName": "models"},
    "gpusPerNode": 1,
    "contextLength": 32768,
    "memFractionStatic": 0.85,
    "resources": {"cpu": "8", "memory": "32Gi", "shmSize": "8Gi"},
}
IMAGE = "lmsysorg/sglang:v0.5.23-cu130"


def _wire(value: Any) -> Any:
    """An input as the engine hands it to construct: every number a double."""
    if isinstance(value, bool) or not isinstance(value, int | float | dict | list):
        return value
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return float(value)


def _run(tmp_path: Path, body: str) -> harness.RunResult:
    """A program under mocks; it may call ``construct(type, name, inputs)`` as the engine calls the provider."""
    program = tmp_path / "program.py"
    program.write_text(
        textwrap.dedent(
            """
            import json
            import pulumi
            from sglang_platform.provider.host import PlatformProvider

            PROVIDER = PlatformProvider("0.0.0")

            def construct(component, name, inputs, opts=None):
                return PROVIDER.construct(name, "sglang-platform:index:" + component, json.loads(inputs), opts)
            """
        )
        + textwrap.dedent(body)
    )
    return harness.run({}, program=program)


def _registered(result: harness.RunResult) -> list[tuple[str, str, str, Any]]:
    return sorted((r.type, r.name, r.parent, r.spec) for r in result.resources)


# --- the schema ------------------------------------------------------------------------------------------------


def test_the_inputs_module_is_generated_from_the_stack_models():
    """provider/inputs.py is tools/package_inputs.py's output: a changed config model changes the schema."""
    assert (ROOT / "provider" / "inputs.py").read_text() == package_inputs.generate()


def test_the_committed_schema_is_the_codes():
    """provider/schema.json is what the provider serves (as `pulumi package get-schema` prints it): a change to
    a public input shows in review as a change to this file."""
    assert json.loads(SCHEMA.read_text()) == package_schema.schema()


def test_the_schema_lists_every_component_with_typed_inputs_and_outputs():
    schema = json.loads(SCHEMA.read_text())
    assert set(schema["resources"]) == {
        TOKEN + name
        for name in (
            "SglangInferenceGroup",
            "SglangDisaggregatedService",
            "SglangGateway",
            "GpuOperator",
            "Volcano",
            "LwsController",
            "Keda",
            "ModelCache",
            "OpenWebUI",
            "MonitoringStack",
            "InferenceAutoscaler",
            "ServingBenchmark",
            "Platform",
        )
    }
    group = schema["resources"][TOKEN + "SglangInferenceGroup"]
    assert group["isComponent"] is True
    assert group["inputProperties"]["config"] == {
        "$ref": f"#/types/{TOKEN}InferenceGroup",
        "description": "The group: one entry of the stack's sglang-platform:inferenceGroups, with the same keys.",
        "plain": True,
    }
    assert group["requiredInputs"] == ["config", "namespace"]
    assert group["properties"]["port"]["type"] == "integer"
    assert group["properties"]["apiKeySecretName"]["type"] == "string"
    assert set(group["required"]) == {"revision", "baseUrl", "serviceName", "port", "servedModelName"}
    # The configuration's own keys, types and descriptions.
    types = schema["types"]
    model = types[TOKEN + "InferenceGroup"]["properties"]
    assert model["gpuMemoryGiB"] == {
        "type": "number",
        "description": "Memory of one GPU in GiB (capacity check) when gpu is not set; 80 when neither is.",
        "plain": True,
    }
    assert model["scheduler"]["$ref"] == f"#/types/{TOKEN}InferenceGroupScheduler"
    assert types[TOKEN + "InferenceGroupScheduler"]["enum"] == [
        {"name": "Default", "value": "default"},
        {"name": "Volcano", "value": "volcano"},
    ]
    # A preset fills model, gpusPerNode, resources.shmSize...: a group that names one may leave them out (the
    # validation says what is still missing after the merge).
    assert types[TOKEN + "InferenceGroup"]["required"] == ["modelVolume", "name"]
    assert "required" not in types[TOKEN + "Model"]
    assert types[TOKEN + "Resources"]["required"] == ["cpu", "memory"]
    platform = schema["resources"][TOKEN + "Platform"]
    assert platform["inputProperties"]["apiKey"]["secret"] is True
    assert platform["properties"]["gateway"]["additionalProperties"] == {"$ref": f"#/types/{TOKEN}GatewayEndpoint"}
    assert platform["properties"]["addons"]["$ref"] == f"#/types/{TOKEN}Addons"
    assert types[TOKEN + "BenchmarkOutcome"]["properties"]["passed"]["type"] == "boolean"


def test_platform_inputs_are_the_stack_keys_and_its_secrets():
    """One typed input, the stack's: a stack file's sglang-platform:* block is a Platform's properties."""
    platform = json.loads(SCHEMA.read_text())["resources"][TOKEN + "Platform"]
    keys = {f.alias or n for n, f in PlatformConfig.model_fields.items()}
    assert set(platform["inputProperties"]) == keys | set(SECRET_KEYS)
    assert platform["requiredInputs"] == ["inferenceGroups"]


ANY = "pulumi.json#/Any"


def _any_paths(prop: dict[str, Any], path: str) -> list[str]:
    """Where a property of the schema is untyped (itself, its items, its values)."""
    found = [path] if prop.get("$ref") == ANY else []
    if isinstance(prop.get("items"), dict):
        found += _any_paths(prop["items"], f"{path}[]")
    if isinstance(prop.get("additionalProperties"), dict):
        found += _any_paths(prop["additionalProperties"], f"{path}.<key>")
    return found


def _refs(prop: dict[str, Any]) -> list[str]:
    own = [prop["$ref"].rsplit("/", 1)[-1]] if prop.get("$ref", "").startswith("#/types/") else []
    return own + [r for key in ("items", "additionalProperties") if key in prop for r in _refs(prop[key])]


def _untyped(schema: dict[str, Any]) -> set[str]:
    """Every untyped spot of the components' inputs, and of the types they reach (outputs are not inputs)."""
    out: set[str] = set()
    pending = []
    for token, spec in schema["resources"].items():
        for key, prop in spec.get("inputProperties", {}).items():
            out.update(_any_paths(prop, f"{token.removeprefix(TOKEN)}.{key}"))
            pending += _refs(prop)
    seen: set[str] = set()
    while pending:
        token = pending.pop()
        if token in seen:
            continue
        seen.add(token)
        for key, prop in schema["types"][token].get("properties", {}).items():
            out.update(_any_paths(prop, f"{token.removeprefix(TOKEN)}.{key}"))
            pending += _refs(prop)
    return out


def test_no_input_is_untyped_where_the_configuration_has_a_type():
    """Untyped (pulumi.json#/Any) only where the configuration itself takes anything: raw chart values, and the
    Kubernetes objects a ModelCache hands an inference group."""
    assert _untyped(json.loads(SCHEMA.read_text())) == {
        "GpuOperatorConfig.values.<key>",
        "VolcanoConfig.values.<key>",
        "LwsConfig.values.<key>",
        "KedaConfig.values.<key>",
        "MonitoringConfig.values.<key>",
    } | {
        f"{component}.{key}[].<key>"
        for component in ("SglangInferenceGroup", "SglangDisaggregatedService")
        for key in ("initContainers", "extraVolumes")
    }


def test_the_untyped_check_finds_an_untyped_input():
    network = {"type": "array", "items": {"$ref": ANY}}
    schema = {
        "types": {TOKEN + "Network": {"properties": {"hcas": network}}, TOKEN + "Out": {"properties": {"x": network}}},
        "resources": {
            TOKEN + "X": {
                "inputProperties": {"config": {"$ref": ANY}, "network": {"$ref": f"#/types/{TOKEN}Network"}},
                "properties": {"out": {"$ref": f"#/types/{TOKEN}Out"}},
            }
        },
    }
    assert _untyped(schema) == {"Network.hcas[]", "X.config"}


def test_the_declared_outputs_are_the_library_components_own():
    """A declaration names the library component's attributes, so what the provider reads back exists."""
    from sglang_platform import components as library

    for component in declared.COMPONENTS:
        own = inspect.get_annotations(getattr(library, component.__name__))
        outputs = {k for k, v in own.items() if str(v).startswith("pulumi.Output[")}
        assert outputs <= set(inspect.get_annotations(component)) <= set(own), component.__name__


# --- construct: the same objects, the same refusals ------------------------------------------------------------


def test_a_group_and_its_gateway_register_what_a_python_program_does(tmp_path):
    group = {"config": GROUP, "namespace": "team-a", "image": IMAGE, "apiKey": API_KEY, "clientNamespaces": ["apps"]}
    gateway = {
        "config": {"replicas": 2},
        "namespace": "team-a",
        "servedModelName": "qwen",
        "apiKeySecretName": "r1-api-key",
        "sglangRelease": "0.5.23",
    }
    through_provider = _run(
        tmp_path,
        f"""
        construct("SglangInferenceGroup", "r1", {json.dumps(json.dumps(_wire(group)))})
        construct("SglangGateway", "r1-gateway", {json.dumps(json.dumps(_wire(gateway)))})
        """,
    )
    in_python = _run(
        tmp_path,
        f"""
        from sglang_platform.components import SglangGateway, SglangGatewayArgs
        from sglang_platform.components import SglangInferenceGroup, SglangInferenceGroupArgs
        from sglang_platform.config import InferenceGroup
        from sglang_platform.config.gateway import GatewayConfig

        SglangInferenceGroup("r1", SglangInferenceGroupArgs(
            config=InferenceGroup.model_validate({GROUP!r}), namespace="team-a", image={IMAGE!r},
            api_key=pulumi.Output.secret({API_KEY!r}), client_namespaces=["apps"],
        ))
        SglangGateway("r1-gateway", SglangGatewayArgs(
            config=GatewayConfig(replicas=2), namespace="team-a", image="lmsysorg/sgl-model-gateway:v0.3.2",
            served_model_name="qwen", worker_port=8000, api_key_secret_name="r1-api-key", sglang_release="0.5.23",
        ))
        """,
    )
    assert through_provider.error is None and in_python.error is None
    registered = _registered(through_provider)
    assert registered == _registered(in_python)
    assert {t for t, *_ in registered} >= {
        f"{TOKEN}SglangInferenceGroup",
        f"{TOKEN}SglangGateway",
        "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet",
        "kubernetes:apps/v1:Deployment",
    }


def _refused_with(tmp_path: Path, component: str, inputs: dict[str, Any]) -> Exception:
    """What construct raised for the inputs (it must raise)."""
    from pulumi.errors import InputPropertiesError

    try:
        result = _run(tmp_path, f"construct({component!r}, 'r1', {json.dumps(json.dumps(_wire(inputs)))})")
    except InputPropertiesError as error:
        return error
    raise AssertionError(f"not refused: {result.error or 'registered ' + str(len(result.resources))}")


def _refusal(tmp_path: Path, component: str, inputs: dict[str, Any]) -> tuple[str, harness.RunResult | None]:
    return str(_refused_with(tmp_path, component, inputs)), None


class _GrpcContext:
    """The part of grpc.aio's ServicerContext the SDK's server calls on a failed construct: abort_with_status
    reads the status' code, details and trailing metadata (an attribute missing there is an AttributeError,
    which gRPC sends as "Unexpected <class 'AttributeError'>" instead of the status)."""

    def __init__(self) -> None:
        self.aborted: tuple[Any, str, Any] | None = None

    async def abort_with_status(self, status: Any) -> None:
        self.aborted = (status.code, status.details, status.trailing_metadata)
        raise RuntimeError("aborted")  # grpc raises to end the call


def test_a_refusal_reaches_the_engine_as_one_invalid_argument_with_the_refusal_text(tmp_path):
    """The refusal goes through the SDK's provider server as the engine receives it: one INVALID_ARGUMENT
    status whose message is the refusal text, and no per-property entries (the engine would print each after
    the message, repeating its lines)."""
    import asyncio

    from pulumi.provider.server import ProviderServicer
    from pulumi.runtime.proto import errors_pb2, status_pb2

    bad = GROUP | {"gpusPerNode": 0, "replicaz": 2}
    error = _refused_with(tmp_path, "SglangInferenceGroup", {"config": bad, "namespace": "ns"})

    async def construct(request: Any, context: Any) -> Any:
        raise error

    servicer = ProviderServicer(None, [], "127.0.0.1:0")  # type: ignore[arg-type]
    servicer._construct = construct  # type: ignore[method-assign]
    context = _GrpcContext()
    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the loop the other tests' mocks use
    try:
        with pytest.raises(RuntimeError, match="aborted"):
            loop.run_until_complete(servicer.Construct(None, context))  # type: ignore[arg-type]
    finally:
        loop.close()
    assert context.aborted is not None
    code, details, metadata = context.aborted
    assert code.name == "INVALID_ARGUMENT"
    assert details == str(error)
    assert [line.split(":", 1)[0] for line in details.splitlines()] == [
        "SglangInferenceGroup 'r1'",
        "  - gpusPerNode",
        "  - replicaz",
    ]
    [(key, blob)] = metadata
    assert key == "grpc-status-details-bin"
    status = status_pb2.Status.FromString(blob)
    assert (status.code, status.message) == (code.value[0], details)
    [packed] = status.details
    properties = errors_pb2.InputPropertiesError()
    assert packed.Unpack(properties) and list(properties.errors) == []


def test_a_refused_group_gets_a_python_programs_message_and_registers_nothing(tmp_path):
    """The rules of the group, run in construct: one error, the library's own text, nothing registered."""
    from sglang_platform.components.sglang_group import SglangInferenceGroupArgs, _refuse_invalid
    from sglang_platform.config import InferenceGroup

    bad = GROUP | {"tensorParallel": 2, "ports": {"http": 20000}}
    message, _ = _refusal(tmp_path, "SglangInferenceGroup", {"config": bad, "namespace": "ns", "image": IMAGE})
    group = InferenceGroup.model_validate(bad)
    with pytest.raises(ValueError) as python:
        _refuse_invalid("r1", group, SglangInferenceGroupArgs(config=group, namespace="ns", image=IMAGE))
    assert message == str(python.value)
    assert message.splitlines() == [
        "SglangInferenceGroup 'r1': invalid config (2 problems):",
        "  - tensorParallel: tensorParallel 2 must equal nodes x gpusPerNode = 1 x 1 = 1 (SGLang shards the model "
        "over every GPU of the group)",
        "  - ports.distInit: port 20000 is also ports.http; the two must differ",
    ]


def test_every_field_problem_at_once_each_with_its_key_path(tmp_path):
    bad = GROUP | {"gpusPerNode": 0, "resources": {"cpu": "lots", "memory": "32Gi"}, "replicaz": 2}
    message, _ = _refusal(tmp_path, "SglangInferenceGroup", {"config": bad, "namespace": "ns"})
    assert message.splitlines()[0] == "SglangInferenceGroup 'r1': invalid config (3 problems):"
    lines = message.splitlines()[1:]
    assert [line.split(":", 1)[0] for line in lines] == ["  - gpusPerNode", "  - resources.cpu", "  - replicaz"]
    assert lines[2].startswith("  - replicaz: unknown key (a typo?); allowed here: preset, name, model,")


def test_a_platform_is_the_stack_and_its_children_are_parented_to_it(tmp_path):
    """The dev stack's keys as a Platform's inputs: the very objects the stack's program declares."""
    inputs = stack_values("dev") | {"apiKey": API_KEY} | FRONT_END_SECRETS
    platform = _run(tmp_path, f"construct('Platform', 'dev', {json.dumps(json.dumps(_wire(inputs)))})")
    stack, _ = harness.run_stack("dev", secrets={"apiKey": API_KEY, **FRONT_END_SECRETS})
    assert platform.error is None and stack.error is None
    assert harness.kubernetes_objects(platform) == harness.kubernetes_objects(stack)
    assert harness.releases(platform) == harness.releases(stack)
    root = platform.named("dev")
    assert root.type == f"{TOKEN}Platform"
    # What the stack's program registers at the root of the stack, the Platform registers under itself.
    at_root = stack.named("serving-namespace").parent
    assert {r.name for r in platform.resources if r.parent == root.urn} == {
        r.name for r in stack.resources if r.parent == at_root
    }


def test_a_platforms_outputs_reach_the_program_as_the_stack_exports_them(tmp_path):
    """What construct hands back (the SDK maps each output by its schema type): the add-ons' modes as the
    strings a stack exports. An enum-typed mode inside an object came back as {} (the SDK maps a nested enum
    as an object), so the schema types it as a string."""
    inputs = stack_values("dev") | {"apiKey": API_KEY} | FRONT_END_SECRETS
    platform = _run(
        tmp_path,
        f"""
        state = construct('Platform', 'dev', {json.dumps(json.dumps(_wire(inputs)))}).state
        pulumi.export("addons", state["addons"])
        """,
    )
    stack, _ = harness.run_stack("dev", secrets={"apiKey": API_KEY, **FRONT_END_SECRETS})
    assert platform.error is None
    # The SDK leaves out what is unset (a release's status under mocks), as the schema's optional keys allow.
    exported = {name: {k: v for k, v in a.items() if v is not None} for name, a in stack.outputs["addons"].items()}
    assert platform.outputs["addons"] == exported
    assert {name: addon["mode"] for name, addon in platform.outputs["addons"].items()} == {
        "gpuOperator": "present",
        "volcano": "absent",
        "lws": "install",
        "keda": "install",
    }


def test_a_bad_platform_input_gets_the_stacks_message(tmp_path):
    values = stack_values("dev")
    values["inferenceGroups"][0] |= {"tensorParallel": 3, "gpusPerNode": 0}
    message, _ = _refusal(tmp_path, "Platform", values | {"apiKey": API_KEY} | FRONT_END_SECRETS)
    stack, _ = harness.run_stack("dev", overrides={"inferenceGroups": values["inferenceGroups"]})
    assert stack.error is not None and stack.error.startswith("invalid stack configuration (1 problem):")
    assert message == f"Platform 'r1': {stack.error}"


def test_secrets_sent_in_plain_text_stay_secret(tmp_path):
    """A program in another language may send the API key as a plain string: the Secret's data is still a
    secret, and the key is nowhere in plain text."""
    inputs = {"config": GROUP, "namespace": "ns", "image": IMAGE, "apiKey": API_KEY}
    result = _run(tmp_path, f"construct('SglangInferenceGroup', 'r1', {json.dumps(json.dumps(inputs))})")
    secret = result.named("r1-api-key")
    assert harness.is_secret(secret.inputs["stringData"])
    assert secret.plain["stringData"] == {"api-key": API_KEY}
    assert API_KEY not in json.dumps([r.spec for r in result.resources])


def test_missing_and_unknown_inputs_are_named_at_once(tmp_path):
    """What the SDK's own mapping would drop (a key the schema does not know) or raise one at a time."""
    message, _ = _refusal(tmp_path, "SglangGateway", {"namespace": "ns", "servedModelNmae": "qwen"})
    assert message.splitlines() == [
        "SglangGateway 'r1': invalid inputs (2 problems):",
        "  - servedModelName: required input is missing",
        "  - servedModelNmae: unknown input (a typo?); allowed: namespace, servedModelName, config, image, product, "
        "workerPort, apiKeySecretName, clientNamespaces, clientCidrs, monitoringNamespace, pdService, pdRevision, "
        "sglangRelease",
    ]
