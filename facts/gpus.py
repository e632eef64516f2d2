"""The GPUs a group can run on: architecture, compute capability, memory, FP8, and how GPU feature discovery
labels their nodes. One table, so ``gpuMemoryGiB``, the quantization rules and the live node checks all follow
from the one ``gpu`` a group names.

Sources, per column:
- architecture and support by the GPU Operator: NVIDIA cloud-native-docs ``gpu-operator/platform-support.rst``
  at commit 73575d6d ("GPU Operator 24.9.1", the pinned chart) lists A100, A800, H100, H200, H20, H800, L40S;
  B200 first appears at 7788e329 ("GPU Operator 25.3.0 release docs").
- compute capability: CUDA's table of compute capabilities (developer.nvidia.com/cuda-gpus): Ampere A100/A800
  8.0, Ada L40S 8.9, Hopper H100/H800/H20/H200 9.0, Blackwell B200 10.0. GPU feature discovery exposes it as
  ``nvidia.com/gpu.compute.major`` / ``.minor`` (k8s-device-plugin ``internal/lm/resource.go``,
  newArchitectureLabels; the operator's GFD is k8s-device-plugin v0.17.0, gpu-operator v24.9.1 values.yaml).
- FP8: tensor-core FP8 (e4m3/e5m2) exists from compute capability 8.9 (Ada, Hopper, Blackwell). Triton refuses
  ``fp8e4nv`` below it ("type fp8e4nv not supported in this architecture. The supported fp8 dtypes are
  ('fp8e4b15', 'fp8e5')", DeepSeek-R1#588 on A800, sglang#5871 on A10).
- memory: ``nvidia-smi --query-gpu=memory.total`` in MiB, the value GFD puts in ``nvidia.com/gpu.memory``
  (resource.go: GetTotalMemoryMB). The live check allows a few percent of slack: drivers and ECC settings move
  the figure slightly, and the label is what the node says.
- product label: GFD's ``nvidia.com/gpu.product`` is the NVML device name with spaces replaced by ``-``
  (resource.go productLabel); MIG devices append ``-MIG-<profile>``, time-sliced ones ``-SHARED``. Values seen
  on real nodes: NVIDIA-A800-SXM4-80GB, NVIDIA-H20, NVIDIA-H200, NVIDIA-B200 (public cluster docs and scripts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_MEMORY = "nvidia.com/gpu.memory"
GFD_COUNT = "nvidia.com/gpu.count"
GFD_COMPUTE_MAJOR = "nvidia.com/gpu.compute.major"
GFD_COMPUTE_MINOR = "nvidia.com/gpu.compute.minor"
GFD_FAMILY = "nvidia.com/gpu.family"
GPU_RESOURCE = "nvidia.com/gpu"
# The label the GPU Operator's feature discovery sets to "true" on every node with an NVIDIA GPU.
GPU_NODE_LABEL = "nvidia.com/gpu.present"
# Below this, tensor cores have no FP8 and Triton cannot compile kernels over float8_e4m3fn.
FP8_MIN_CAPABILITY = 89

Architecture = Literal["ampere", "ada", "hopper", "blackwell"]


@dataclass(frozen=True)
class Gpu:
    name: str
    architecture: Architecture
    compute_capability: tuple[int, int]
    memory_mib: int
    products: tuple[str, ...]
    # First GPU Operator release whose platform-support page lists the GPU.
    gpu_operator_since: str = "v24.9.0"

    @property
    def capability(self) -> int:
        """SGLang's form: major * 10 + minor (model_loader/loader.py _get_quantization_config)."""
        major, minor = self.compute_capability
        return major * 10 + minor

    @property
    def fp8(self) -> bool:
        return self.capability >= FP8_MIN_CAPABILITY

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @property
    def capability_text(self) -> str:
        return "{}.{}".format(*self.compute_capability)


_TABLE = (
    Gpu("A100-40GB", "ampere", (8, 0), 40960, ("NVIDIA-A100-SXM4-40GB", "NVIDIA-A100-PCIE-40GB")),
    Gpu("A100-80GB", "ampere", (8, 0), 81920, ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe")),
    # The reference deployment's GPU (tests/fixtures/reference: "NVIDIA A800 80GB", 8 per node).
    Gpu("A800-80GB", "ampere", (8, 0), 81920, ("NVIDIA-A800-SXM4-80GB", "NVIDIA-A800-80GB-PCIe")),
    # Ada GDDR6: 46068 MiB with ECC on, 49140 with it off (the live check allows the difference).
    Gpu("L40S", "ada", (8, 9), 46068, ("NVIDIA-L40S",)),
    Gpu("L20", "ada", (8, 9), 46068, ("NVIDIA-L20",)),
    Gpu("H100-80GB", "hopper", (9, 0), 81559, ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe")),
    Gpu("H800-80GB", "hopper", (9, 0), 81559, ("NVIDIA-H800", "NVIDIA-H800-PCIe")),
    Gpu("H20-96GB", "hopper", (9, 0), 97871, ("NVIDIA-H20",)),
    Gpu("H200-141GB", "hopper", (9, 0), 143771, ("NVIDIA-H200", "NVIDIA-H200-NVL")),
    Gpu("B200", "blackwell", (10, 0), 183359, ("NVIDIA-B200",), gpu_operator_since="v25.3.0"),
)
GPUS: Mapping[str, Gpu] = {g.name: g for g in _TABLE}


def gpu_named(name: str) -> Gpu | None:
    return GPUS.get(name)


def gpu_choices() -> str:
    return ", ".join(GPUS)


@dataclass(frozen=True)
class ProductLabel:
    """A parsed ``nvidia.com/gpu.product`` value."""

    raw: str
    base: str
    mig_profile: str | None = None
    shared: bool = False

    @property
    def gpu(self) -> Gpu | None:
        return gpu_by_product(self.base)


def parse_product(value: str) -> ProductLabel:
    """``NVIDIA-A100-SXM4-40GB-MIG-1g.5gb`` -> base ``NVIDIA-A100-SXM4-40GB``, profile ``1g.5gb``;
    ``NVIDIA-H100-80GB-HBM3-SHARED`` -> shared (time-slicing without a rename)."""
    base, shared = value, False
    if base.endswith("-SHARED"):
        base, shared = base.removesuffix("-SHARED"), True
    mig = None
    if "-MIG-" in base:
        base, _, mig = base.partition("-MIG-")
    return ProductLabel(value, base, mig or None, shared)


def gpu_by_product(product: str) -> Gpu | None:
    """The table entry a GFD product label (without MIG/SHARED suffixes) belongs to; case-insensitive,
    because NVML spells the PCIe variants both ``PCIe`` and ``PCIE``."""
    wanted = product.lower()
    for gpu in _TABLE:
        if any(p.lower() == wanted for p in gpu.products):
            return gpu
    return None
