"""What is true of the things the platform runs, as data and lookups: pinned versions (``bom``), add-on
compatibility (``compat``), GPUs, CUDA builds and drivers, the model catalogue, quantization schemes, presets,
resource quantities, and per release the SGLang flag tables (``sglang``), the gateway's (``gateways``) and the
metric names (``metrics``). Imports nothing else of the library: no Pulumi, no network, no stack."""
