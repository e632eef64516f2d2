"""The programs the platform's pods run, shipped as ConfigMaps: the weight download and stagers
(``download_model``), the multi-node group gate (``wait_for_group``), DeepGEMM's precompile
(``deep_gemm_precompile``) and the serving benchmark (``serving_benchmark``). They import nothing of the
library, which the pods do not have: only the standard library and what the pod's image ships (the hub
clients, torch)."""

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
