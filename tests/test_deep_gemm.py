"""DeepGEMM's kernels compiled once into a cache the pods reuse (deepGemm): the volume and variable per
release, the compile init container and its exact command, the rules, and the script it runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import API_KEY, container, env_map, lws, run_with

from sglang_platform.config import InferenceGroup
from sglang_platform.facts.sglang import load_table
from sglang_platform.pod_scripts import deep_gemm_precompile as script
from sglang_platform.render.sglang_pods import deep_gemm_key

GROUP = "sglang-platform:inferenceGroups[0]"
CACHE = {"type": "pvc", "claimName": "deep-gemm"}


def prod(image: str, **group):
    """Pulumi.prod.yaml's group (its INT8 weights: the cache rules do not look at the GPU) on ``image``."""

    def mutate(values):
        values.setdefault("versions", {})["sglangImage"] = image
        # prod's hosts with an R580 driver, which runs every CUDA build (they declare the reference's 550: cu124 only).
        values["gpuNodes"]["driverVersion"] = "580.95.05"
        values["inferenceGroups"][0].update(group)

    return run_with("prod", mutate, secrets={"apiKey": API_KEY})


def templates(result) -> dict:
    return lws(result, "deepseek-r1")["spec"]["leaderWorkerTemplate"]


def test_every_pod_compiles_into_the_shared_cache_then_serves_from_it():
    tpl = templates(prod("lmsysorg/sglang:v0.5.23-cu130", deepGemm={"cache": CACHE}))
    for role, rank in (("leaderTemplate", "0"), ("workerTemplate", "$(LWS_WORKER_INDEX)")):
        spec = tpl[role]["spec"]
        server = container(tpl[role])
        # After the weights are on the node (the gate finds the staged revision) and on every node of the group
        # (the group gate: the compile runs on all of them together), before SGLang.
        names = [c["name"] for c in spec["initContainers"]]
        assert names == ["wait-for-weights", "wait-for-group", "compile-deep-gemm"]
        compile_ = spec["initContainers"][2]
        assert compile_["command"] == ["python3", "/opt/sglang-platform/deep-gemm/deep_gemm_precompile.py"]
        key = compile_["args"][3]
        assert compile_["args"][:5] == ["--cache", "/var/cache/sglang-platform/deep-gemm", "--key", key, "--"]
        assert key.startswith("deepseek-r1-") and len(key) == len("deepseek-r1-") + 16
        # The server's own flags, without the API key, on the pod's loopback, with compile_deep_gemm's timeout.
        assert compile_["args"][5:] == [
            "python3",
            "-m",
            "sglang.compile_deep_gemm",
            "--model-path",
            "/mnt/catcat_data/model/DeepSeek-R1-Block-INT8",
            "--served-model-name",
            "deepseek-r1",
            "--tp-size",
            "16",
            "--dist-init-addr",
            "$(LWS_LEADER_ADDRESS):20000",
            "--nnodes",
            "2",
            "--node-rank",
            rank,
            "--trust-remote-code",
            "--context-length",
            "131072",
            "--dist-timeout",
            "1800",
            "--enable-metrics",
            "--host",
            "127.0.0.1",
            "--port",
            "8000",
            "--timeout",
            "3600",
        ]
        # The same GPUs, RDMA devices, capabilities and environment as the server (its NCCL settings: the compile
        # starts the whole distributed server), less the key.
        assert compile_["resources"] == server["resources"]
        assert compile_["securityContext"] == server["securityContext"]
        assert env_map(compile_) == {k: v for k, v in env_map(server).items() if k != "SGLANG_API_KEY"}
        assert env_map(server)["SGLANG_DG_CACHE_DIR"] == "/var/cache/sglang-platform/deep-gemm"
        mount = {"name": "deep-gemm-cache", "mountPath": "/var/cache/sglang-platform/deep-gemm"}
        assert mount in server["volumeMounts"] and mount in compile_["volumeMounts"]
        assert {"name": "deep-gemm-cache", "persistentVolumeClaim": {"claimName": "deep-gemm"}} in spec["volumes"]
        assert {
            "name": "deep-gemm-script",
            "configMap": {"name": "deepseek-r1-deep-gemm", "defaultMode": 0o444},
        } in spec["volumes"]


def test_the_script_ships_in_a_config_map_the_group_waits_for():
    result = prod("lmsysorg/sglang:v0.5.23-cu130", deepGemm={"cache": CACHE})
    cm = result.k8s_object("ConfigMap", "deepseek-r1-deep-gemm")
    assert cm["data"] == {"deep_gemm_precompile.py": Path(script.__file__).read_text()}
    assert result.urn_of("deepseek-r1-deep-gemm") in result.named("deepseek-r1-lws").dependencies


@pytest.mark.parametrize(
    ("image", "variable"),
    [("lmsysorg/sglang:v0.4.10-cu126", "SGL_DG_CACHE_DIR"), ("lmsysorg/sglang:v0.5.23-cu130", "SGLANG_DG_CACHE_DIR")],
)
def test_the_cache_variable_is_the_releases_own(image, variable):
    env = env_map(container(templates(prod(image, deepGemm={"cache": CACHE}))["leaderTemplate"]))
    assert env[variable] == "/var/cache/sglang-platform/deep-gemm"
    assert {"SGL_DG_CACHE_DIR", "SGLANG_DG_CACHE_DIR"} - {variable} - set(env) == {
        "SGL_DG_CACHE_DIR",
        "SGLANG_DG_CACHE_DIR",
    } - {variable}


def test_without_precompile_only_the_cache_is_kept():
    tpl = templates(prod("lmsysorg/sglang:v0.5.23-cu130", deepGemm={"cache": CACHE, "precompile": False}))
    spec = tpl["leaderTemplate"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["wait-for-weights", "wait-for-group"]
    assert not [v for v in spec["volumes"] if v["name"] == "deep-gemm-script"]


@pytest.mark.parametrize(
    ("image", "deep_gemm", "lines"),
    [
        (
            "lmsysorg/sglang:v0.5.23-cu130",
            {"cache": {"type": "hostPath", "hostPath": "/var/cache/dg"}},
            [
                f"{GROUP}.deepGemm.cache.type: compile_deep_gemm runs on every node of the group together; with a "
                "cache per node, a node that has the kernels would skip it while the others wait for it: give the "
                "group one claim every node mounts (type pvc, ReadWriteMany), or set precompile false"
            ],
        ),
        (
            "lmsysorg/sglang:v0.4.5-cu124",
            {"cache": CACHE},
            [
                f"{GROUP}.deepGemm: SGLang 0.4.5 has no DeepGEMM kernel cache to keep (SGL_DG_CACHE_DIR and python3 -m "
                "sglang.compile_deep_gemm arrive in 0.4.6): remove deepGemm, or pin 0.4.6 or later"
            ],
        ),
        (
            "lmsysorg/sglang:v0.5.23-cu130",
            {"cache": {"type": "pvc"}},
            [f"{GROUP}.deepGemm.cache.claimName: required when type is pvc"],
        ),
    ],
)
def test_rules(image, deep_gemm, lines):
    result = prod(image, deepGemm=deep_gemm)
    assert result.error is not None
    assert [line.removeprefix("  - ") for line in result.error.splitlines()[1:]] == lines


def test_a_node_local_cache_is_fine_without_precompile_or_on_one_node():
    cache = {"type": "hostPath", "hostPath": "/var/cache/dg"}
    assert prod("lmsysorg/sglang:v0.5.23-cu130", deepGemm={"cache": cache, "precompile": False}).error is None


def test_an_ampere_preset_refuses_deep_gemm():
    def a800(values):
        values.setdefault("versions", {})["sglangImage"] = "lmsysorg/sglang:v0.5.23-cu130"
        values["gpuNodes"]["driverVersion"] = "580.95.05"
        g = values["inferenceGroups"][0]
        g.update(preset="deepseek-r1-a800", deepGemm={"cache": CACHE})
        g["model"] = {"download": None}

    result = run_with("prod", a800, secrets={"apiKey": API_KEY})
    assert result.error is not None
    assert result.error.splitlines()[1:] == [
        f"  - {GROUP}.deepGemm: the GPUs of deepseek-r1-a800 (A800-80GB, A100-80GB) do not run DeepGEMM (FP8 GEMMs "
        "on Hopper, sm90, and newer): remove deepGemm"
    ]


def test_hostpath_caches_make_the_namespace_privileged():
    result = run_with(
        "dev",
        lambda v: v.update(
            versions={"sglangImage": "lmsysorg/sglang:v0.5.23-cu130"},
            inferenceGroups=[
                {**v["inferenceGroups"][0], "deepGemm": {"cache": {"type": "hostPath", "hostPath": "/var/cache/dg"}}}
            ],
        ),
    )
    assert result.error is None, result.error
    ns = result.k8s_object("Namespace", "sglang-dev")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_the_key_changes_with_the_image_and_the_flags():
    raw = {
        "name": "r1",
        "model": {"path": "DeepSeek-R1", "servedName": "r1"},
        "modelVolume": {"type": "pvc", "claimName": "m"},
        "gpusPerNode": 8,
        "deepGemm": {"cache": CACHE},
        "resources": {"cpu": "8", "memory": "64Gi"},
    }
    table = load_table("0.5.23")
    g = InferenceGroup.model_validate(raw)
    key = deep_gemm_key(g, "img:1", table)
    assert key == deep_gemm_key(InferenceGroup.model_validate(raw), "img:1", table)
    assert key != deep_gemm_key(g, "img:2", table)
    assert key != deep_gemm_key(InferenceGroup.model_validate({**raw, "dpAttentionSize": 8}), "img:1", table)
    # The image names the release; the same flags in another image are another key (img:2 above).


# The script, as the init container runs it.


def test_the_script_compiles_once_per_key_and_gpu(tmp_path):
    log = tmp_path / "runs.txt"
    compile_ = [sys.executable, "-c", f"open({str(log)!r}, 'a').write('compiled\\n')"]
    argv = ["--cache", str(tmp_path), "--key", "r1-abc", "--", *compile_]
    assert script.main(argv, gpu="NVIDIA H200") == 0
    marker = tmp_path / ".sglang-platform" / "r1-abc-NVIDIA-H200.done"
    assert json.loads(marker.read_text())["command"] == compile_
    assert script.main(argv, gpu="NVIDIA H200") == 0  # the kernels are there: nothing runs
    assert log.read_text() == "compiled\n"
    assert script.main(argv, gpu="NVIDIA H20") == 0  # another GPU model compiles its own
    assert log.read_text() == "compiled\ncompiled\n"


def test_a_failed_compile_leaves_no_marker(tmp_path, capsys):
    argv = ["--cache", str(tmp_path), "--key", "k", "--", sys.executable, "-c", "raise SystemExit(3)"]
    assert script.main(argv, gpu="NVIDIA H200") == 3
    assert not (tmp_path / ".sglang-platform").exists() or not list((tmp_path / ".sglang-platform").iterdir())
    assert "no marker written, the next start compiles again" in capsys.readouterr().out
