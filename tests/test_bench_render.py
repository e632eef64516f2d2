"""The render benchmark's second floor (tools/bench_render.py, docs/benchmarks.md) registers the very objects and
Helm releases of the render, each as the kind it is: otherwise "own overhead" would compare unlike work."""

from __future__ import annotations

import json

from tools import bench_render, harness


def test_the_objects_floor_registers_exactly_what_the_render_does(tmp_path):
    render, _ = harness.run_stack("prod")
    assert render.error is None, render.error
    objects, releases = harness.kubernetes_objects(render), harness.releases(render)
    rendered = tmp_path / "prod.json"
    rendered.write_text(json.dumps({"objects": objects, "releases": releases}))
    program = tmp_path / "objects.py"
    program.write_text(bench_render.OBJECTS_PROGRAM)

    floor = harness.run({"sglang-platform:floorObjects": str(rendered)}, [], stack="bench", program=program)

    assert floor.error is None, floor.error
    assert harness.kubernetes_objects(floor) == objects
    assert harness.releases(floor) == releases
    # The typed classes where the SDK has the kind (a Deployment is not registered as a CustomResource) ...
    types = {r.type for r in floor.resources if r.custom}
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:rbac.authorization.k8s.io/v1:Role"} <= types
    # ... and nothing but the objects and releases: no component, no provider of the program's own.
    assert sorted(r.type for r in floor.resources if r.custom) == sorted(
        r.type for r in render.resources if r.custom and not r.type.startswith("pulumi:providers:")
    )
