"""The checks of a stack that need nothing but the stack: each rule returns Problems and never raises, so every
problem of a stack is reported at once. ``stack.check_platform`` runs them all, once the schema's own field
rules pass; ``cluster`` and ``quantization`` also judge what the live checks read (``live``)."""
