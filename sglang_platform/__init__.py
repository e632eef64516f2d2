"""sglang-platform as a library: one import name, ``sglang_platform``, and its rooms, each named for what it holds.

    facts        what is true of the things the platform runs, as data: the pinned versions (bom), add-on
                 compatibility, GPUs, CUDA builds, the model catalogue, quantization schemes, presets, and each
                 release's SGLang and gateway flag tables and metric names. No Pulumi, no network.
    config       the stack's configuration: its typed schema and its loading (``config.load``).
    render       pure builders of what gets deployed: the SGLang and gateway command lines, an inference group's
                 pod specs, the alerting rules and the dashboard, chart sources. No Pulumi resources.
    rules        the checks of a stack that need nothing but the stack: each returns problems, never raises.
    live         the checks that read something at preview: the cluster, a model hub, S3.
    components   the ComponentResources, the Pulumi helpers they share, and how __main__.py wires them.
    pod_scripts  the programs the pods run, shipped in ConfigMaps (they import nothing of the library).

In a checkout each room is a directory at the repository's root (the project's own shape: Pulumi runs
``__main__.py`` from there) and ``sglang_platform/<room>`` is a relative symlink to it; the wheel holds the
rooms inside ``sglang_platform/``. Inside the library every import is package-relative, so nothing of it is
importable under a generic top-level name (docs/library.md).
"""
