"""The pure helpers the end-to-end suite judges with (tools/engine.py, tests/e2e/scenario.py): they run without
the engine, so a wrong comparison cannot hide behind a skipped suite."""

from __future__ import annotations

import base64
from typing import Any

from e2e.scenario import changed_paths, type_and_name

from tools.engine import Preview, Result, as_stored, mismatches
from tools.sim_stacks import committed, merged, overrides


def test_the_live_object_may_add_defaults_but_must_hold_every_rendered_field():
    rendered = {"spec": {"replicas": 1, "template": {"containers": [{"name": "a", "image": "x:1"}]}}}
    live: dict[str, Any] = {
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "template": {"containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]},
        }
    }
    assert mismatches(rendered, live) == []
    live["spec"]["template"]["containers"][0]["image"] = "x:2"
    assert mismatches(rendered, live) == [".spec.template.containers[0].image: live 'x:2', rendered 'x:1'"]
    assert mismatches({"a": [1, 2]}, {"a": [1]}) == [".a: live [1], rendered [1, 2]"]
    assert mismatches({"a": {"b": 1}}, {}) == [".a: absent live, rendered {'b': 1}"]


def test_quantities_compare_by_value_and_empty_values_may_be_dropped():
    assert mismatches({"memory": "1024Gi", "cpu": "0.5"}, {"memory": "1Ti", "cpu": "500m"}) == []
    assert mismatches({"memory": "1Gi"}, {"memory": "1G"}) == [".memory: live '1G', rendered '1Gi'"]
    assert mismatches({"labels": {}, "tolerations": []}, {}) == []


def test_a_secret_is_compared_as_the_server_keeps_it():
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"api-key": "k"}, "type": "Opaque"}
    assert as_stored(secret) == {
        "kind": "Secret",
        "metadata": {"name": "s"},
        "type": "Opaque",
        "data": {"api-key": base64.b64encode(b"k").decode()},
    }


def test_changed_paths_spell_pulumis_detailed_diff():
    before = {"spec": {"t": {"containers": [{"image": "a"}, {"image": "b"}], "n": 1}}}
    after = {"spec": {"t": {"containers": [{"image": "a"}, {"image": "c"}], "n": 1, "new": True}}}
    assert changed_paths(before, after) == {"spec.t.containers[1].image", "spec.t.new"}
    assert type_and_name(
        "urn:pulumi:dev::proj::pulumi:pulumi:Stack$sglang-platform:index:Keda$kubernetes:helm.sh/v3:Release::keda-release"
    ) == (
        "kubernetes:helm.sh/v3:Release",
        "keda-release",
    )


def test_a_preview_that_failed_shows_its_error_and_what_changed():
    out = (
        '{"steps": [{"op": "same", "urn": "urn:pulumi:s::p::t::a"}, {"op": "update", "urn": "urn:pulumi:s::p::t::b"}],'
        ' "changeSummary": {"same": 1, "update": 1},'
        ' "diagnostics": [{"severity": "warning", "message": "w"}, {"severity": "error", "message": "bad key"}]}'
    )
    preview = Preview.parse(Result([], 255, out, ""))
    assert preview.error_text == "bad key"
    assert list(preview.changed()) == ["b"]


def test_the_overrides_merge_into_the_committed_stack(tmp_path):
    values = merged(
        {"keda": {"mode": "install"}, "lws": {"mode": "install", "gangScheduling": True}}, overrides("prod", tmp_path)
    )
    assert values["keda"] == {
        "mode": "install",
        "values": {"webhooks": {"enabled": False}, "metricsServer": {"enabled": False}},
    }
    assert values["lws"] == {"mode": "present", "gangScheduling": True}
    assert values["chartMirror"] == str(tmp_path)
    assert "volcano" not in overrides("dev", tmp_path)


def test_a_preview_of_the_committed_stack_gets_only_what_it_needs_on_the_simulation(tmp_path):
    """The chart mirror, the simulation's Kubernetes, and for prod the compatibility rules as warnings (the mirror
    holds prod's own KEDA 2.17.2 and Volcano 1.10.2); the webhook values and lws.mode only from up on."""
    assert overrides("prod", tmp_path, preview_only=True) == {
        "chartMirror": str(tmp_path),
        "versions": {"kubernetes": "1.36.3"},
        "preflight": {"compatibility": False},
    }
    assert overrides("dev", tmp_path, preview_only=True) == {
        "chartMirror": str(tmp_path),
        "versions": {"kubernetes": "1.36.3"},
    }
    # prod's own versions (its SGLang image, Kubernetes pin) stay but for what the simulation replaces.
    versions = merged(committed("prod"), overrides("prod", tmp_path))["versions"]
    assert versions == committed("prod")["versions"] | {"kubernetes": "1.36.3"}
    assert (versions["kedaChart"], versions["volcanoChart"]) == ("2.17.2", "1.10.2")
