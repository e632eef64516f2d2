"""The package's provider: Pulumi's component provider (pulumi.provider.experimental), which infers the schema
from the declarations in ``components``, with the construction of each component handed to its builder, and a
refusal reported as one clean error (the message a Python program gets) instead of a traceback."""

from __future__ import annotations

import json
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pulumi
from pulumi.errors import InputPropertiesError
from pulumi.provider.experimental.analyzer import ComponentDefinition
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.provider import ConstructResult

from ..config.errors import PROJECT, refusal
from .components import BUILDERS, COMPONENTS, SECRET_INPUTS, InvalidInputsError, plain


class PlatformProvider(ComponentProvider):
    """Construct runs the component's builder, which validates the inputs with the stack's models and rules and
    creates the library component; a refusal registers nothing and fails the construction with its message."""

    def __init__(self, version: str) -> None:
        super().__init__(COMPONENTS, PROJECT, None, version)
        self.schema = json.dumps(go_input_types(mark_secrets(json.loads(self.schema or "{}"))))

    def construct(
        self,
        name: str,
        resource_type: str,
        inputs: pulumi.Inputs,
        options: pulumi.ResourceOptions | None = None,
    ) -> ConstructResult:
        self.validate_resource_type(self._name, resource_type)
        component = resource_type.rsplit(":", maxsplit=1)[-1]
        definition = self._component_defs[component]
        try:
            # The inputs as sent (their names are the schema's): the SDK's own mapping drops a key the schema
            # does not know, where the stack's validation names it as a typo.
            instance = BUILDERS[component](name, checked_inputs(component, name, inputs, definition), options)
        except InvalidInputsError as error:
            # The engine prints the message as it is: the same text a Python program's refusal has. The SDK's
            # server sends an InputPropertiesError as an INVALID_ARGUMENT status, but only with a list of
            # property errors (without one its status lacks trailing metadata and gRPC sends "Unexpected
            # AttributeError" instead); the list stays empty because the engine would print each entry again
            # after the message, which already names every key path. Any other exception comes with the
            # provider's traceback appended.
            raise InputPropertiesError(str(error), []) from None
        return ConstructResult(instance.urn, self.get_state(instance, definition))


def checked_inputs(component: str, name: str, inputs: pulumi.Inputs, definition: ComponentDefinition) -> Any:
    """The component's own inputs present and no other, else one refusal naming every one; numbers that are
    whole as integers and enums as their values (what the stack's models read)."""
    problems = [f"{key}: required input is missing" for key, p in definition.inputs.items() if not p.optional]
    problems = [p for p in problems if inputs.get(p.split(":", 1)[0]) is None]
    allowed = list(definition.inputs)
    unknown = [key for key in inputs if key not in allowed]
    problems += [f"{key}: unknown input (a typo?); allowed: {', '.join(allowed)}" for key in unknown]
    if problems:
        raise InvalidInputsError(refusal(f"{component} {name!r}: invalid inputs", problems))
    return plain(dict(inputs))


def mark_secrets(schema: dict[str, Any]) -> dict[str, Any]:
    """``secret: true`` on every secret input (the analyzer has no annotation for it)."""
    for resource in schema.get("resources", {}).values():
        for key, prop in resource.get("inputProperties", {}).items():
            if key in SECRET_INPUTS:
                prop["secret"] = True
    return schema


def go_input_types(schema: dict[str, Any]) -> dict[str, Any]:
    """The Go SDK with an Args type for every object type. Without it Pulumi's Go generator (v3.276) leaves out
    BackendArgs, which OpenWebUIArgs.Backends names, and the SDK does not compile: it marks an object type of a
    plain list as an input only when a plain object property sorts before the list in its resource
    (MonitoringStack's config precedes targets; OpenWebUI's backends comes first)."""
    schema.setdefault("language", {}).setdefault("go", {})["generateExtraInputTypes"] = True
    return schema


def package_version() -> str:
    """The library's version: the checkout's pyproject.toml (a package added from a repository path or tag),
    else the installed distribution's."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if pyproject.is_file():
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    return metadata.version("sglang-platform")


def serve(args: list[str] | None = None) -> None:
    """Run the provider for the engine (the language host starts ``python provider/ <engine address> ...``)."""
    from pulumi.provider import main

    main(PlatformProvider(package_version()), sys.argv[1:] if args is None else args)
