"""SGLang's ``launch_server`` options per release, from tables generated from each release's wheel, and
argparse's verdict on a command line (pure: no Pulumi, no network)."""

from .check import FlagProblem, check_args
from .table import (
    Option,
    Table,
    Word,
    first_release_with,
    generate_command,
    load_table,
    missing_table_message,
    normalize,
    releases_with,
    shipped_releases,
    table_path,
)

__all__ = [
    "FlagProblem",
    "Option",
    "Table",
    "Word",
    "check_args",
    "first_release_with",
    "generate_command",
    "load_table",
    "missing_table_message",
    "normalize",
    "releases_with",
    "shipped_releases",
    "table_path",
]
