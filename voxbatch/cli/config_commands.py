"""`voxbatch config`: inspect the configuration."""

from __future__ import annotations

from typing import Any

import click

from voxbatch.cli.app import App, json_option
from voxbatch.cli.render import emit_json


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@json_option
@click.pass_obj
def config_show(app: App, as_json: bool) -> None:
    """The effective configuration (defaults < file < environment < flags), key masked."""
    from voxbatch.config import masked

    data = masked(app.settings)
    if as_json:
        emit_json(data)
        return
    for line in _flatten(data):
        click.echo(line)


def _flatten(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            lines += _flatten(value, f"{prefix}.{key}" if prefix else key)
        return lines
    if isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        lines = []
        for i, item in enumerate(data):
            lines += _flatten(item, f"{prefix}[{i}]")
        return lines
    return [f"{prefix} = {data!r}"]
