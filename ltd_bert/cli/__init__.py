"""The `ltd` command line: glue over the library, one module per command group.

`base` holds the root group `cli` and what the commands share (error handling, the working
directory, model and IDF defaults); importing a command module registers its commands on it.
"""

from __future__ import annotations

from ltd_bert.cli import encode, evaluate, idf, quality, speed, tasks, teacher, train  # noqa: F401
from ltd_bert.cli.base import cli

quality.register(cli)
speed.register(cli)
tasks.register(cli)

main = cli

__all__ = ["cli", "main"]
