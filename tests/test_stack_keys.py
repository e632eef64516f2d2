"""A key under a namespace that is a typo of the project's is refused; other projects' keys are left alone."""

from __future__ import annotations

import pytest

from sglang_platform.rules.stack_keys import check_namespaces, looks_like


@pytest.mark.parametrize(
    "namespace",
    ["sglang-platfrom", "sglang-plaform", "sglang_platform", "SGLang-Platform", "sglangplatform", "sglang-platforms"],
)
def test_typos_of_the_project(namespace):
    assert looks_like(namespace)


@pytest.mark.parametrize("namespace", ["sglang-platform", "kubernetes", "pulumi", "aws", "sglang", "vllm-platform"])
def test_other_namespaces(namespace):
    assert not looks_like(namespace)


def test_the_problem_names_the_key_and_the_fix():
    keys = ["sglang-platform:inferenceGroups", "sglang-platfrom:namespace", "kubernetes:context", "pulumi:tags"]
    (problem,) = check_namespaces(keys)
    assert problem.key == "sglang-platform:namespace"
    assert problem.message == (
        "is set as 'sglang-platfrom:namespace', under the namespace 'sglang-platfrom', which this program does not "
        "read (a typo of 'sglang-platform'?): rename it to sglang-platform:namespace (`pulumi config rm "
        "sglang-platfrom:namespace` and `pulumi config set sglang-platform:namespace ...`, or edit the stack file)"
    )
    assert check_namespaces(["no-namespace", "sglang-platfrom:"]) == []
