"""Starting the command line stays light: --help, --version and shell completion import neither
the SDK, the ORM, the HTTP stack nor the settings models; commands are imported when asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

# What a command may import when it runs, but never what listing or completing commands needs.
HEAVY = ("mistralai", "sqlalchemy", "sqlmodel", "aiohttp", "websockets", "watchfiles", "pydantic")

COMMANDS = {
    "backup",
    "config",
    "costs",
    "demo",
    "doctor",
    "emulator",
    "export",
    "jobs",
    "process",
    "prune",
    "retry",
    "run",
    "search",
    "show",
    "status",
    "tail",
    "why",
}

# Runs main() in a fresh interpreter, then reports the exit code and every module it loaded.
PROBE = """
import json, sys
from voxbatch.cli.main import main
code = None
try:
    main({args!r}, prog_name="voxbatch", terminal_width=80)
except SystemExit as exc:
    code = exc.code
print("\\n" + json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def heavy_in(modules: list[str] | set[str]) -> list[str]:
    return sorted(m for m in modules if m.partition(".")[0] in HEAVY)


def probe(args: list[str], **env: str) -> tuple[int | None, str, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    output, _, last = proc.stdout.rstrip("\n").rpartition("\n")
    report = json.loads(last)
    return report["code"], output, set(report["modules"])


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--version"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    code, output, modules = probe(args)
    assert code == 0
    assert ("Commands:" in output) if args != ["--version"] else ("version 0.1.0" in output)
    assert heavy_in(modules) == []


def test_help_lists_every_command_without_importing_it() -> None:
    _, output, modules = probe(["--help"])
    listed = {line.split()[0] for line in output.split("Commands:\n", 1)[1].splitlines() if line}
    assert listed == COMMANDS
    assert "voxbatch.emulator" not in modules


@pytest.mark.parametrize(
    ("shell", "words", "cword", "expected"),
    [
        ("bash", "voxbatch ", "1", "plain,process"),
        ("bash", "voxbatch e", "1", "plain,emulator"),
        ("zsh", "voxbatch ", "1", "Run a local Mistral-compatible server"),
        ("bash", "voxbatch jobs --status ", "3", "plain,needs_review"),
        ("bash", "voxbatch process --format ", "3", "plain,vtt"),
        ("bash", "voxbatch costs --by ", "3", "plain,inbox"),
        ("bash", "voxbatch config ", "2", "plain,show"),
    ],
)
def test_shell_completion_imports_nothing_heavy(
    shell: str, words: str, cword: str, expected: str
) -> None:
    code, output, modules = probe(
        [], _VOXBATCH_COMPLETE=f"{shell}_complete", COMP_WORDS=words, COMP_CWORD=cword
    )
    assert code == 0
    assert expected in output
    assert heavy_in(modules) == []


@pytest.mark.parametrize("module", ["voxbatch.cli", "voxbatch.cli.main"])
def test_importing_the_cli_loads_nothing_heavy(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = [
        line.rpartition("|")[2].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert module in loaded
    assert heavy_in(loaded) == []


def test_every_listed_command_imports_as_a_click_command() -> None:
    from voxbatch.cli.main import main

    ctx = click.Context(main)
    assert set(main.list_commands(ctx)) == COMMANDS
    for name in COMMANDS:
        command = main.commands[name]
        assert isinstance(command, click.Command)
        assert command.name == name
        resolved = main.resolve_command(ctx, [name])[1]
        assert resolved is command


def test_the_emulator_is_listed_with_its_own_short_help() -> None:
    """Its package imports the aiohttp server, so its one-line help is also kept in the CLI."""
    from voxbatch.cli.main import main
    from voxbatch.emulator.cli import emulator

    stand_in = click.Command("emulator", help=main.summaries["emulator"])
    for limit in range(10, 200, 7):
        assert stand_in.get_short_help_str(limit) == emulator.get_short_help_str(limit)
    assert not emulator.hidden and not emulator.deprecated


def test_option_choices_match_their_sources() -> None:
    """Spelled out in voxbatch.cli.choices so that building the commands imports no store."""
    from voxbatch import config
    from voxbatch.cli import choices
    from voxbatch.ops import reports
    from voxbatch.store.models import JobState

    assert tuple(s.value for s in JobState) == choices.JOB_STATES
    assert config.OUTPUT_FORMATS == choices.OUTPUT_FORMATS
    assert reports.COST_GROUPINGS == choices.COST_GROUPINGS
