"""The command line: parse, call the library, render. Data on stdout, progress on stderr.

Exit codes: 0 ok; 1 some work failed; 2 usage or configuration error; 3 the daemon cannot start;
130 interrupted (Ctrl-C).

Every command is registered here by name and imported only when it is asked for, so that
`voxbatch --help`, `--version` and shell completion import neither the SDK, the database
layer nor the HTTP stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from voxbatch.cli.app import App, VoxbatchGroup
from voxbatch.cli.lazy import LazyGroup

COMMANDS = {
    "process": "voxbatch.cli.transcribe_commands:process",
    "run": "voxbatch.cli.transcribe_commands:run",
    "jobs": "voxbatch.cli.query_commands:jobs",
    "show": "voxbatch.cli.query_commands:show",
    "export": "voxbatch.cli.query_commands:export",
    "search": "voxbatch.cli.query_commands:search",
    "costs": "voxbatch.cli.query_commands:costs",
    "config": "voxbatch.cli.config_commands:config",
    "demo": "voxbatch.cli.demo:demo",
    "emulator": "voxbatch.emulator.cli:emulator",
    "status": "voxbatch.cli.ops_commands:status",
    "why": "voxbatch.cli.ops_commands:why",
    "tail": "voxbatch.cli.ops_commands:tail",
    "retry": "voxbatch.cli.ops_commands:retry",
    "doctor": "voxbatch.cli.ops_commands:doctor",
    "backup": "voxbatch.cli.admin_commands:backup",
    "prune": "voxbatch.cli.admin_commands:prune",
}

# The emulator's package imports its aiohttp server: list it without importing it.
# tests/test_cli_startup.py checks this is the emulator command's own help.
SUMMARIES = {
    "emulator": "Run a local Mistral-compatible server (realtime transcription, chat, speech).",
}


class RootGroup(LazyGroup, VoxbatchGroup):
    """Commands imported on first use; voxbatch errors turned into messages and exit codes."""


@click.group(
    cls=RootGroup,
    lazy_subcommands=COMMANDS,
    summaries=SUMMARIES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML configuration file (else $VOXBATCH_CONFIG, $VOXBATCH_HOME/voxbatch.toml, "
    "/etc/voxbatch/voxbatch.toml).",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="State folder (else $VOXBATCH_HOME, $STATE_DIRECTORY, ~/.local/share/voxbatch).",
)
@click.version_option(package_name="voxbatch")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, home: Path | None) -> None:
    """voxbatch: batch and watch-folder transcription with Mistral Voxtral."""
    overrides: dict[str, Any] = {}
    if home is not None:
        overrides["home"] = str(home)
    ctx.obj = App(config_file=config_file, overrides=overrides)
