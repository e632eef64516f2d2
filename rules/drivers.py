"""The SGLang image's CUDA build against the GPU nodes' NVIDIA driver, offline (``facts.cuda`` has the table and
its sources; the live check of the nodes' GFD labels is ``rules.cluster``).

The driver is the one the stack declares for hosts that have it preinstalled (``gpuNodes.driverVersion``, or a
group's ``nodeShape.driverVersion``), or the one the stack's GPU Operator installs when it manages the driver
(``gpuOperator.driver.version``, else the chart's default). An image that needs a newer driver than that is
refused at ``versions.sglangImage`` (or ``sglangVersion`` for a digest), with the newest SGLang build the driver
can run; ``preflight.compatibility: false`` turns the refusal into a warning, as for the add-on windows.
"""

from __future__ import annotations

from packaging.version import Version

from ..config.errors import PROJECT, Loc, Problem, key_path
from ..config.stack import PlatformConfig
from ..facts.cuda import CUDA_NOTES, MIN_DRIVER, OPERATOR_DRIVER, advice, image_cuda, parse_driver
from .flags import release_loc

# A driver as the stack or the table spells it (550.127.05: Version would print 550.127.5), and where it comes from.
Driver = tuple[str, str]


def operator_driver(cfg: PlatformConfig) -> Driver | None:
    """(the driver the stack's GPU Operator installs, where that comes from), when it installs one."""
    op = cfg.gpu_operator
    if op.mode != "install" or not op.driver.managed:
        return None
    if op.driver.version:
        return op.driver.version, "gpuOperator.driver.version"
    default = OPERATOR_DRIVER.get(cfg.versions.gpu_operator_chart)
    if default is None:
        return None
    return default, f"the default driver of the GPU Operator {cfg.versions.gpu_operator_chart} chart"


def declared_drivers(cfg: PlatformConfig) -> list[tuple[Loc, str]]:
    """Each declared host driver with its key: gpuNodes', and every serving unit's own nodeShape's."""
    out: list[tuple[Loc, str]] = []
    if cfg.gpu_nodes.driver_version:
        out.append((("gpuNodes", "driverVersion"), cfg.gpu_nodes.driver_version))
    for unit in cfg.serving_units:
        shape = unit.group.node_shape
        if shape is not None and shape.driver_version:
            entry = (unit.loc(("nodeShape", "driverVersion")), shape.driver_version)
            if entry not in out:
                out.append(entry)
    return out


def check_drivers(cfg: PlatformConfig) -> tuple[list[Problem], list[str]]:
    """(problems, warnings)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    managed = operator_driver(cfg)
    declared = declared_drivers(cfg)
    drivers: list[Driver] = []
    if managed is not None:
        drivers.append(managed)
        for loc, text in declared:
            problems.append(
                Problem(
                    loc,
                    f"is {text}, a driver installed on the hosts, but this stack's GPU Operator installs its own "
                    f"({managed[0]}, {managed[1]}; gpuOperator.driver.managed is true): remove it, or set "
                    "gpuOperator.driver.managed false when the hosts keep their driver",
                )
            )
    else:
        drivers += [(text, key_path(loc).removeprefix(f"{PROJECT}:")) for loc, text in declared]
    if not drivers:
        return problems, warnings
    versions = cfg.versions
    image = versions.sglang_image
    cuda = image_cuda(image, versions.sglang_release)
    if cuda is None:
        warnings.append(
            f"the CUDA build of {image!r} is unknown (its tag names no -cuNNN and its release has CUDA 12 builds): "
            f"the GPU nodes' driver ({', '.join(d for d, _ in drivers)}) was not checked against it"
        )
        return problems, warnings
    needed = MIN_DRIVER.get(cuda)
    if needed is None:
        warnings.append(f"CUDA {cuda} of {image!r} is not in facts/cuda.py: the GPU nodes' driver was not checked")
        return problems, warnings
    found = []
    for driver, where in drivers:
        version = parse_driver(driver)
        if version is not None and version < Version(needed):
            found.append(
                Problem(
                    release_loc(versions),
                    f"{image} is a CUDA {cuda} build, which needs NVIDIA driver {needed} or newer ({CUDA_NOTES}), and "
                    f"the GPU nodes run {driver} ({where}): {advice(version)}; or upgrade the nodes' driver to "
                    f"{needed} or newer",
                )
            )
    if not cfg.preflight.compatibility:
        warnings += [f"{p.key}: {p.message} (not refused: {PROJECT}:preflight.compatibility is false)" for p in found]
        found = []
    return problems + found, warnings
