"""The CUDA build of an SGLang image and the NVIDIA driver it needs on the GPU nodes. A leaf of data and lookups;
the rules are ``rules.drivers`` (offline, from the stack) and ``rules.cluster`` (the nodes' labels).

Sources:
- NVIDIA CUDA Toolkit release notes, "CUDA Toolkit and Corresponding Driver Versions" (Table 3 of the 12.x notes,
  the "CUDA Driver" section of 13.0's, docs.nvidia.com/cuda/archive/<release>/cuda-toolkit-release-notes): the
  Linux x86_64 driver each toolkit's GA release needs ("Toolkit Driver Version"). nvidia-smi agrees (driver
  575.51.03 reports "CUDA Version: 12.9"). The rule uses that column, not the minor-version compatibility one
  (>= 525.60.13 for any 12.x): NVIDIA's own containers refuse an older driver (NVIDIA_REQUIRE_CUDA of the
  nvidia/cuda base images SGLang builds on) except on the datacenter branches they list for forward compatibility,
  and SGLang JIT-compiles kernels (Triton, FlashInfer, DeepGEMM) that minor-version compatibility does not cover.
  A stack that knows its nodes run such an image anyway turns the refusal into a warning with
  ``preflight.compatibility: false``.
- SGLang's image tags (lmsysorg/sglang on Docker Hub, as its release workflows name them): ``v<release>-cu<NNN>``
  (``cu124`` is CUDA 12.4); from 0.5.20 every build is CUDA 13 (the bare ``v<release>`` too), 0.5.19 was the last
  CUDA 12 release (``v0.5.19-cu129``, "the last CUDA 12 tag" in SGLang's install docs).
- GPU feature discovery (NVIDIA/k8s-device-plugin, the GFD of the GPU Operator) labels a node with its driver:
  ``nvidia.com/cuda.driver-version.full`` (``550.127.05``), ``.major``/``.minor``/``.revision``, and the older
  ``nvidia.com/cuda.driver.major``/``.minor``/``.rev``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

CUDA_NOTES = "NVIDIA CUDA Toolkit release notes, 'CUDA Toolkit and Corresponding Driver Versions'"

# The GA release of each toolkit line SGLang images were built on, and the Linux driver it needs.
MIN_DRIVER: dict[str, str] = {
    "11.8": "520.61.05",
    "12.1": "530.30.02",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

# From this release on every SGLang build is CUDA 13 (0.5.19, the last CUDA 12 release, is the one before it).
CUDA13_ONLY_SINCE = Version("0.5.20")


# The newest SGLang release known to have a build of each CUDA line, for the refusal's advice: which image a node
# whose driver is too old for the pinned one can run. Each was seen in published deployments or SGLang's docs (not
# pulled from here); ``table`` says whether this program ships its flag table (facts/sglang).
@dataclass(frozen=True)
class Build:
    cuda: str
    tag: str
    release: str
    table: bool
    note: str


NEWEST_BUILDS: tuple[Build, ...] = (
    Build("12.4", "v0.4.7-cu124", "0.4.7", True, "the newest SGLang release seen with a CUDA 12.4 build"),
    Build("12.6", "v0.5.1-cu126", "0.5.1", True, "the newest release with a CUDA 12.6 build and a flag table here"),
    Build("12.9", "v0.5.19-cu129", "0.5.19", False, "the last CUDA 12 release"),
    Build("13.0", "v0.5.23-cu130", "0.5.23", True, "the newest release"),
)

# The driver the GPU Operator installs when it manages the driver (driver.managed, no driver.version): each chart's
# values.yaml driver.version ( tests/test_drivers.py reads them again).
OPERATOR_DRIVER: dict[str, str] = {"v24.9.1": "550.127.08", "v25.10.1": "580.105.08", "v26.7.0": "595.91.07"}

# GFD's labels, newest spelling first.
GFD_DRIVER_FULL = "nvidia.com/cuda.driver-version.full"
GFD_DRIVER_PARTS = (
    (
        "nvidia.com/cuda.driver-version.major",
        "nvidia.com/cuda.driver-version.minor",
        "nvidia.com/cuda.driver-version.revision",
    ),
    ("nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor", "nvidia.com/cuda.driver.rev"),
)

_CU_SUFFIX = re.compile(r"(?:^|-)cu(\d\d)(\d)(?:-|$)")


def parse_driver(text: str | None) -> Version | None:
    """``550.127.05`` -> Version; None for anything else."""
    if not text or not re.fullmatch(r"\d+(\.\d+){0,2}", text.strip()):
        return None
    try:
        return Version(text.strip())
    except InvalidVersion:
        return None


def image_cuda(image: str, release: Version | None) -> str | None:
    """The CUDA line an SGLang image is built on: its tag's ``-cuNNN``, else CUDA 13.0 for a release that has
    only CUDA 13 builds; None when neither says (a digest or a bare tag of an older release)."""
    reference = image.split("@", 1)[0]
    tag = reference.rpartition(":")[2] if ":" in reference.rpartition("/")[2] else ""
    match = _CU_SUFFIX.search(tag)
    if match:
        return f"{int(match[1])}.{match[2]}"
    if release is not None and release >= CUDA13_ONLY_SINCE:
        return "13.0"
    return None


def min_driver(cuda: str) -> Version | None:
    text = MIN_DRIVER.get(cuda)
    return Version(text) if text else None


def newest_cuda(driver: Version) -> str | None:
    """The newest CUDA line in the table the driver runs, or None (older than every line)."""
    lines = [cuda for cuda, needed in MIN_DRIVER.items() if driver >= Version(needed)]
    return max(lines, key=Version) if lines else None


def newest_build(driver: Version) -> Build | None:
    """The newest known SGLang build the driver can run."""
    runnable = [b for b in NEWEST_BUILDS if driver >= Version(MIN_DRIVER[b.cuda])]
    return runnable[-1] if runnable else None


def node_driver(labels: dict[str, str]) -> Version | None:
    """A node's driver from its GFD labels (the full version, else its parts), or None when GFD says nothing."""
    full = parse_driver(labels.get(GFD_DRIVER_FULL))
    if full is not None:
        return full
    for keys in GFD_DRIVER_PARTS:
        parts = [labels.get(k) for k in keys]
        if parts[0] and parts[0].isdigit():
            return parse_driver(".".join(p for p in parts if p and p.isdigit()))
    return None


def advice(driver: Version) -> str:
    """What a node with ``driver`` can run instead, and the upgrade that runs the newest line."""
    build = newest_build(driver)
    major = driver.release[0]
    if build is None:
        return f"driver {major} is older than every SGLang build in facts/cuda.py: upgrade the driver"
    cuda = newest_cuda(driver)
    image = f"lmsysorg/sglang:{build.tag}"
    suffix = "cu" + build.cuda.replace(".", "")
    text = f"with driver {major} (CUDA {cuda} at most) pin a -{suffix} image: {image} ({build.note}"
    if not build.table:
        text += f"; generate its flag table first: python tools/sglang_flags.py generate {build.release}"
    return text + ")"
