"""Bill of materials: every third-party version the platform installs, pinned in one place.

Each entry can be overridden per stack under ``sglang-platform:versions``. Bumping a pin here changes
every stack that does not override it; the conformance checks re-run against the new version.
"""

from __future__ import annotations

from typing import Final

# The reference deployment (shared/reference) runs this exact image; its wheel on PyPI is what the
# flag check reads (sglang.srt.server_args of the same version).
SGLANG_IMAGE: Final = "lmsysorg/sglang:v0.4.3.post2-cu124"

# The Kubernetes release the reference cluster runs; rendered objects are validated against its schemas.
KUBERNETES_VERSION: Final = "1.30.6"

DEFAULTS: Final[dict[str, str]] = {
    "sglangImage": SGLANG_IMAGE,
    "kubernetes": KUBERNETES_VERSION,
}
