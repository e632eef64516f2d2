"""The model gateway the platform runs, per product and release: sglang-router (PyPI ``sglang-router``, images
``lmsysorg/sgl-model-gateway``, 0.3.2 its last release) and its successor, the Shepherd Model Gateway (PyPI
``smg``, images ``lightseekorg/smg``).

Each release's ``launch_router`` parser is a flag table here, ``<product>-<release>.json``, generated from its
wheel by ``python tools/gateway_flags.py generate <product> <release>`` in the format of SGLang's
(``facts/sglang/table.py``), so the gateway's flags are checked at preview as a group's are. What a release does
that its table cannot say is a row of ``RELEASES``, each fact read where the row says (``tests/test_gateway.py``
reads the tables and the metric names again from the wheels):

- ``discovery_enables_igw``: with Kubernetes discovery the launcher switches to IGW ("inference gateway") mode
  (smg's ``launch_router.py``: "IGW mode automatically enabled because service discovery is turned on"). Then each
  request is routed by its ``model`` to the workers whose discovered model id (the backend's
  ``served_model_name``) it names, ``/readiness`` needs any healthy worker, and in PD mode the HTTP PD router is
  built without per-role policies (smg ``model_gateway/src``: ``health.rs``, ``routers/router_manager.rs``,
  ``routers/factory.rs`` ``create_igw_routers``).
- ``pd_readiness_needs_both_roles``: a PD gateway's ``/readiness`` answers 200 only while a healthy prefill and a
  healthy decode server exist (not so in IGW mode).
- ``per_role_policies``: ``--prefill-policy`` and ``--decode-policy`` choose a policy per role with discovery on.
- ``metrics``: the list of metric names (``facts/metrics/``) the dashboard and alerts may use.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal, Protocol, get_args

from packaging.version import InvalidVersion, Version

from ..sglang.table import Table

GatewayProduct = Literal["sglang-router", "smg"]
PRODUCTS: tuple[str, ...] = get_args(GatewayProduct)

# Image repositories (their last path part) that run each product: a mirror keeping the name is recognised, one
# renaming it says which with versions.gatewayProduct.
IMAGE_NAMES: dict[str, str] = {"sgl-model-gateway": "sglang-router", "sglang-router": "sglang-router", "smg": "smg"}
# The Python package of each product, whose launch_router the images run.
PACKAGES: dict[str, str] = {"sglang-router": "sglang_router", "smg": "smg"}


@dataclass(frozen=True)
class GatewayRelease:
    product: str
    release: str
    discovery_enables_igw: bool
    pd_readiness_needs_both_roles: bool
    per_role_policies: bool
    metrics: str
    source: str

    @property
    def launch(self) -> tuple[str, ...]:
        """The container's command: the images' entrypoint, spelled out."""
        return ("python3", "-m", f"{PACKAGES[self.product]}.launch_router")


RELEASES: tuple[GatewayRelease, ...] = (
    GatewayRelease(
        "sglang-router",
        "0.3.2",
        discovery_enables_igw=False,
        pd_readiness_needs_both_roles=True,
        per_role_policies=True,
        metrics="sgl-model-gateway.txt",
        source="sglang_router-0.3.2 wheel (launch_router.py, router_args.py); sgl-project/sglang sgl-model-gateway/src",
    ),
    GatewayRelease(
        "smg",
        "1.13.0",
        discovery_enables_igw=True,
        pd_readiness_needs_both_roles=False,
        per_role_policies=False,
        metrics="smg-1.13.0.txt",
        source="smg-1.13.0 wheel (launch_router.py, router_args.py); lightseekorg/smg model_gateway/src at v1.9.0+ "
        "(main of 2026-08-07: health.rs, routers/router_manager.rs, routers/factory.rs, service_discovery.rs)",
    ),
)


def product_of_image(image: str) -> str | None:
    """The product an image runs, by its repository's name (``lightseekorg/smg:1.13.0`` -> smg)."""
    repository = image.split("@", 1)[0]
    name = repository.rsplit("/", 1)[-1]
    name = name.rsplit(":", 1)[0] if ":" in name else name
    return IMAGE_NAMES.get(name)


class PinnedGateway(Protocol):
    """What ``gateway_of`` reads of a stack's versions (``config.stack.Versions``)."""

    @property
    def gateway_product(self) -> str | None: ...
    @property
    def gateway_image(self) -> str: ...
    @property
    def gateway_release(self) -> Version | None: ...


def gateway_of(versions: PinnedGateway) -> tuple[str, Version] | None:
    """(product, release) of the stack's gateway image; None when either cannot be told."""
    product = versions.gateway_product or product_of_image(versions.gateway_image)
    release = versions.gateway_release
    if product is None or release is None:
        return None
    return product, release


def facts(product: str, release: str | Version) -> GatewayRelease:
    """The row of a release: its own, else the newest of its product below it (a table generated for a release
    without a row gets its predecessor's behaviour; add a row with the table), else the product's oldest."""
    rows = [r for r in RELEASES if r.product == product]
    try:
        wanted = Version(str(release))
    except InvalidVersion:
        return rows[-1]
    below = [r for r in rows if Version(r.release) <= wanted]
    return below[-1] if below else rows[0]


def normalize(release: str | Version) -> str:
    return str(Version(str(release)))


def table_name(product: str, release: str | Version) -> str:
    return f"{product}-{normalize(release)}.json"


def table_path(product: str, release: str | Version) -> str:
    return f"facts/gateways/{table_name(product, release)}"


def generate_command(product: str, release: str | Version) -> str:
    return f"python tools/gateway_flags.py generate {product} {normalize(release)}"


def missing_table_message(product: str, release: str | Version) -> str:
    return (
        f"no flag table for {product} {normalize(release)} is shipped: run `{generate_command(product, release)}` "
        f"and commit {table_path(product, release)}"
    )


@functools.cache
def shipped_gateway_tables() -> tuple[tuple[str, str], ...]:
    """(product, release) of every table in this package, oldest first per product."""
    found = []
    for entry in resources.files(__package__).iterdir():
        name = entry.name
        if not name.endswith(".json"):
            continue
        for product in PRODUCTS:
            if name.startswith(f"{product}-"):
                try:
                    found.append((product, Version(name.removeprefix(f"{product}-").removesuffix(".json"))))
                except InvalidVersion:
                    continue
    return tuple((p, str(v)) for p, v in sorted(found))


def load_gateway_table(product: str, release: str | Version) -> Table | None:
    """The shipped table of a release, or None when the program ships none for it."""
    try:
        name = normalize(release)
    except InvalidVersion:
        return None
    return _load(product, name) if (product, name) in shipped_gateway_tables() else None


@functools.cache
def _load(product: str, release: str) -> Table:
    text = resources.files(__package__).joinpath(table_name(product, release)).read_text(encoding="utf-8")
    table = Table(json.loads(text))
    if (table.product, table.release) != (product, release):
        raise ValueError(f"{table_path(product, release)} holds the table of {table.product} {table.release}")
    return table


def releases_with(product: str, flag: str) -> tuple[str, ...]:
    """Shipped releases of ``product``, oldest first, whose parser reads ``flag`` as one option."""
    out = []
    for shipped_product, release in shipped_gateway_tables():
        if shipped_product != product:
            continue
        word = _load(product, release).parse_word(flag)
        if word.kind == "option" and word.option is not None:
            out.append(release)
    return tuple(out)
