"""The components as a Pulumi component package, for programs in TypeScript, Go, YAML (and any Pulumi language):
``pulumi package add <this folder | github.com/<org>/sglang-platform/provider@vX.Y.Z>`` generates an SDK
from its schema (``schema.json``, committed; docs/packages.md). ``inputs`` mirrors the stack configuration's
types, ``components`` declares each component and builds it from a program's inputs, ``host`` serves them.
Python programs import sglang_platform.components directly."""
