"""sglang-platform: the components of the loaded stack and its outputs. The composition itself (the components
in order, each with what it waits for) is sglang_platform.components.platform.compose, which the Platform
component of the package runs too; how they are wired is sglang_platform.components.wiring."""

import pulumi

from sglang_platform import config
from sglang_platform.components.platform import PlatformArgs, compose

try:
    loaded = config.load()
except config.ConfigError as error:
    # A clean message naming every bad key, and nothing registered.
    raise pulumi.RunError(str(error)) from None
for note in loaded.notes:
    pulumi.log.warn(note)

# At the root of the stack, as before there was a Platform component: the stacks' URNs stay as they were.
args = PlatformArgs(config=loaded.platform, secrets=loaded.secrets, startup_minutes=loaded.startup_minutes)
outputs = compose(args)
for name, value in outputs.items():
    pulumi.export(name, value)
