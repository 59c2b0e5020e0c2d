"""Subcommands imported when first asked for (click's "lazily loading subcommands" pattern).

`--help` and shell completion ask every subcommand for its short help, so a command module's
top level must itself be light: heavy imports go inside the command bodies.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import click


def load_command(import_path: str) -> click.Command:
    """The command at "package.module:attribute"."""
    module_name, _, attribute = import_path.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{import_path} is not a click command")
    return command


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name; a command named by import path is imported on first lookup.

    Listing the names imports nothing, so `list_commands` and click's "did you mean" stay light.
    """

    def __init__(self, commands: Mapping[str, click.Command | str]) -> None:
        self._entries: dict[str, click.Command | str] = dict(commands)

    def is_loaded(self, name: str) -> bool:
        return isinstance(self._entries.get(name), click.Command)

    def __getitem__(self, name: str) -> click.Command:
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = load_command(entry)
        return entry

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class LazyGroup(click.Group):
    """A group whose `lazy_subcommands` map names to "module:attribute", imported on lookup.

    `summaries` gives the help of commands whose module is heavy to import even so (the
    emulator's package starts with its aiohttp server): listing them shows that help and imports
    nothing; running one, its own --help or completing its options imports the real command.
    """

    def __init__(
        self,
        *args: Any,
        lazy_subcommands: Mapping[str, str] | None = None,
        summaries: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands({**self.commands, **(lazy_subcommands or {})})
        self.summaries = dict(summaries or {})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        commands = self.commands
        if (
            cmd_name in self.summaries
            and isinstance(commands, LazyCommands)
            and not commands.is_loaded(cmd_name)
        ):
            return click.Command(cmd_name, help=self.summaries[cmd_name])  # listed, not loaded
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        cmd_name, command, rest = super().resolve_command(ctx, args)
        if cmd_name in self.summaries:
            command = self.commands[cmd_name]  # the real one, to run or complete
        return cmd_name, command, rest
