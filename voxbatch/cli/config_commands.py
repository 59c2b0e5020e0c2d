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
    click.echo(as_toml(data), nl=False)


def as_toml(data: dict[str, Any]) -> str:
    """The settings as a TOML file that `--config` loads back to the same settings.

    TOML has no null: unset values are left out (their default is unset). The key is never
    written, only whether one is set; where the settings came from is a comment."""
    import tomli_w

    settings = _without_none({k: v for k, v in data.items() if k != "config_file"})
    key = settings.get("mistral", {}).pop("api_key", None)
    prices = settings.pop("prices", None)
    if prices is not None:  # the file's form is flat: `effective` beside one table a model
        settings["prices"] = {"effective": prices["effective"], **prices["models"]}
    source = data.get("config_file") or "defaults and environment only"
    lines = [
        f"# voxbatch effective configuration (from: {source})",
        f"# mistral api key: {'set' if key else 'not set'} (never shown)",
    ]
    return "\n".join(lines) + "\n" + tomli_w.dumps(settings)


def _without_none(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_none(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_without_none(v) for v in data]
    return data
