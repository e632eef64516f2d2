"""Rules that tie a group's DeepSeek levers to each other and to the pinned release.

The flag tables already refuse a lever the release lacks (on its key, naming the release that adds it) and a
value outside the release's choices. These are what the tables cannot see: what a release does with a
lever it has (``facts.sglang.releases``), and which levers need each other. Each rule cites the code or
document it follows; each problem names the key to change.
"""

from __future__ import annotations

from ..config.errors import Problem
from ..config.stack import InferenceGroup
from ..facts.presets import PRESETS
from ..facts.sglang.releases import ReleaseFacts


def check_levers(g: InferenceGroup, release: ReleaseFacts | None) -> list[Problem]:
    """``release``: the pinned release's facts, None when it is not known (then only the rules that hold for
    every release run)."""
    return [
        *_dp_attention(g, release),
        *_expert_parallel(g, release),
        *_speculative(g, release),
        *_metrics(g),
        *_deep_gemm(g, release),
    ]


def _dp_attention(g: InferenceGroup, release: ReleaseFacts | None) -> list[Problem]:
    size, tp = g.dp_attention_size, g.tp_size
    if size is None:
        return []
    key = ("dpAttentionSize",)
    if release is not None and release.dp_attention_dp_is_tp and size != tp:
        # ServerArgs.__post_init__ of 0.4.3.post2 to 0.4.4: `if self.enable_dp_attention: self.dp_size =
        # self.tp_size`, whatever --dp-size says.
        return [
            Problem(
                key,
                f"SGLang {release.release} runs DP attention with one group per GPU (dp = tensorParallel = {tp}) "
                f"whatever --dp-size says: set {tp}, or pin 0.4.5 or later for {size} groups",
            )
        ]
    if tp % size:
        # 0.4.5+: `assert self.tp_size % self.dp_size == 0`; 0.5.23's parallel_hook checks the same.
        return [
            Problem(
                key,
                f"{size} must divide tensorParallel ({tp}): each DP-attention group runs attention on "
                "tensorParallel / dpAttentionSize GPUs",
            )
        ]
    return []


def _expert_parallel(g: InferenceGroup, release: ReleaseFacts | None) -> list[Problem]:
    ep = g.expert_parallel
    if ep is None:
        return []
    out: list[Problem] = []
    tp = g.tp_size
    deepep = ep.a2a_backend == "deepep"
    if ep.size is not None:
        if deepep and ep.size != tp:
            # enable_deepep_moe / moe_a2a_backend == "deepep" set ep_size = tp_size in every release
            # (0.5.23: arg_groups/overrides.py _a2a_ep_size).
            out.append(
                Problem(
                    ("expertParallel", "size"),
                    f"DeepEP spreads the experts over every GPU of the group: SGLang sets --ep-size to "
                    f"tensorParallel ({tp}); leave size unset",
                )
            )
        elif not deepep and release is not None and release.ep_moe_flag == "forces" and ep.size != tp:
            out.append(
                Problem(
                    ("expertParallel", "size"),
                    f"SGLang {release.release}'s --enable-ep-moe sets the expert-parallel size to tensorParallel "
                    f"({tp}): leave size unset, or pin 0.4.10 or later for {ep.size}",
                )
            )
        elif tp % ep.size:
            out.append(Problem(("expertParallel", "size"), f"{ep.size} must divide tensorParallel ({tp})"))
    if ep.deepep_mode is not None and not deepep:
        out.append(Problem(("expertParallel", "deepepMode"), "only with a2aBackend deepep"))
    if deepep and g.nodes > 1 and g.network.fabric != "infiniband":
        # DeepEP's internode kernels move tokens GPU to GPU with NVSHMEM over RDMA (IBGDA); SGLang's LWS
        # examples and OME's deepseek-rdma runtimes run them with /dev/infiniband, IPC_LOCK and NVSHMEM_* env.
        out.append(
            Problem(
                ("network", "fabric"),
                "DeepEP across nodes sends tokens GPU to GPU over NVSHMEM on RDMA: it needs fabric infiniband "
                "(HCAs, RDMA devices, IPC_LOCK)",
            )
        )
    return out


def _speculative(g: InferenceGroup, release: ReleaseFacts | None) -> list[Problem]:
    spec = g.speculative
    if spec is None:
        return []
    out: list[Problem] = []
    knobs = {"numSteps": spec.num_steps, "eagleTopk": spec.eagle_topk, "numDraftTokens": spec.num_draft_tokens}
    given = [k for k, v in knobs.items() if v is not None]
    if given and len(given) < len(knobs):
        # 0.4.5+: with --speculative-num-steps unset SGLang picks all three and asserts the other two are unset.
        missing = [k for k in knobs if k not in given]
        out.append(
            Problem(
                ("speculative", missing[0]),
                "set numSteps, eagleTopk and numDraftTokens together or not at all (SGLang picks all three when "
                f"numSteps is unset and refuses a partial set); missing: {', '.join(missing)}",
            )
        )
    elif spec.eagle_topk == 1 and spec.num_steps is not None and spec.num_draft_tokens != spec.num_steps + 1:
        # 0.4.7+ ServerArgs / 0.5.23 speculative_hook: topk 1 adjusts draft tokens to steps + 1 with a warning.
        out.append(
            Problem(
                ("speculative", "numDraftTokens"),
                f"with eagleTopk 1 SGLang uses numSteps + 1 = {spec.num_steps + 1} draft tokens: set that",
            )
        )
    if release is None:
        return out
    if not release.mtp_draft_from_model and spec.draft_model_path is None:
        out.append(
            Problem(
                ("speculative", "draftModelPath"),
                f"SGLang {release.release} reads the MTP draft layer only from --speculative-draft-model-path: "
                "set it to the NextN weights in the model volume (e.g. lmsys/DeepSeek-R1-NextN), or pin 0.4.7 or "
                "later, which reads them from the model",
            )
        )
    cap = release.speculative_running_cap
    if cap is not None and g.max_running_requests is None:
        # The DeepSeek docs (docs/basic_usage/deepseek_v3.md, Multi-token Prediction): "Adjust
        # --max-running-requests to a larger number. The default value is 48 for MTP."
        out.append(
            Problem(
                ("maxRunningRequests",),
                f"with speculative decoding SGLang {release.release} caps running requests at {cap} unless "
                "--max-running-requests is set: set maxRunningRequests (the DeepSeek docs raise it for larger "
                "batches, with the CUDA-graph batch sizes)",
            )
        )
    return out


def _deep_gemm(g: InferenceGroup, release: ReleaseFacts | None) -> list[Problem]:
    dg = g.deep_gemm
    if dg is None:
        return []
    out: list[Problem] = []
    cache = dg.cache
    if cache.type == "hostPath" and not cache.host_path:
        out.append(Problem(("deepGemm", "cache", "hostPath"), "required when type is hostPath"))
    if cache.type == "pvc" and not cache.claim_name:
        out.append(Problem(("deepGemm", "cache", "claimName"), "required when type is pvc"))
    if cache.type == "hostPath" and cache.claim_name:
        out.append(Problem(("deepGemm", "cache", "claimName"), "only allowed when type is pvc"))
    if cache.type == "pvc" and cache.host_path:
        out.append(Problem(("deepGemm", "cache", "hostPath"), "only allowed when type is hostPath"))
    if dg.precompile and g.nodes > 1 and cache.type == "hostPath":
        # compile_deep_gemm starts the whole distributed server: every node of the group runs it or none does.
        out.append(
            Problem(
                ("deepGemm", "cache", "type"),
                "compile_deep_gemm runs on every node of the group together; with a cache per node, a node that "
                "has the kernels would skip it while the others wait for it: give the group one claim every node "
                "mounts (type pvc, ReadWriteMany), or set precompile false",
            )
        )
    preset = PRESETS.get(g.preset) if g.preset else None
    if preset is not None and preset.gpus and not preset.deep_gemm:
        out.append(
            Problem(
                ("deepGemm",),
                f"the GPUs of {preset.name} ({', '.join(preset.gpus)}) do not run DeepGEMM (FP8 GEMMs on Hopper, "
                "sm90, and newer): remove deepGemm",
            )
        )
    if release is not None and release.deep_gemm_cache_env is None:
        out.append(
            Problem(
                ("deepGemm",),
                f"SGLang {release.release} has no DeepGEMM kernel cache to keep (SGL_DG_CACHE_DIR and python3 -m "
                "sglang.compile_deep_gemm arrive in 0.4.6): remove deepGemm, or pin 0.4.6 or later",
            )
        )
    return out


def _metrics(g: InferenceGroup) -> list[Problem]:
    if not g.metrics_for_all_schedulers:
        return []
    key = ("metricsForAllSchedulers",)
    if not g.enable_metrics:
        return [Problem(key, "needs enableMetrics")]
    if g.autoscaling is not None and g.attention_tp_size > 1:
        # The first scheduler of each attention-TP group already records its DP group's queue; with every rank
        # recording, each of the attention_tp_size ranks reports the same queue, and the autoscaler's sum of
        # sglang:num_queue_reqs would count each waiting request that many times.
        return [
            Problem(
                key,
                f"with it each of the {g.attention_tp_size} GPUs of an attention group reports the same queue, "
                "and the autoscaler (which sums sglang:num_queue_reqs) would count every waiting request "
                f"{g.attention_tp_size} times: turn it off, or autoscaling off",
            )
        ]
    return []
