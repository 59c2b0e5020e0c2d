"""Settings: defaults < TOML file < VOXBATCH_* environment < command-line flags.

One `Settings` object is built here and passed down; nothing else reads the environment
for configuration. Unknown keys anywhere are errors that name the file (or variable) and key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from voxbatch.config.schema import (
    DEFAULT_BASE_URL,
    DEFAULT_EXTENSIONS,
    DEFAULT_OUTPUTS,
    DEFAULT_PRICES,
    OUTPUT_FORMATS,
    BudgetSettings,
    DaemonSettings,
    InboxProfile,
    MistralSettings,
    ModelPrice,
    OutputFormat,
    PartSettings,
    PriceTable,
    Settings,
)
from voxbatch.errors import AccessError, ConfigError, MissingKeyError, access_error, home_error

ENV_PREFIX = "VOXBATCH_"
# Variables that steer where configuration comes from rather than being settings themselves.
# Read elsewhere, not settings: the config file's path, and the crash tests' kill point.
_ENV_META = frozenset({"VOXBATCH_CONFIG", "VOXBATCH_SYSTEM_CONFIG", "VOXBATCH_CRASH_AT"})
# The system-wide file; VOXBATCH_SYSTEM_CONFIG moves it (packagers, and the hermetic test suite).
SYSTEM_CONFIG = Path("/etc/voxbatch/voxbatch.toml")


def default_home(environ: Mapping[str, str]) -> Path:
    if environ.get("VOXBATCH_HOME"):
        return Path(environ["VOXBATCH_HOME"]).expanduser()
    if environ.get("STATE_DIRECTORY"):
        # systemd may pass several, colon-separated: the first is ours.
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    return Path.home() / ".local" / "share" / "voxbatch"


def find_config_file(
    explicit: Path | None, environ: Mapping[str, str], home: Path
) -> tuple[Path | None, bool]:
    """(path, must_exist). An explicitly named file must exist; discovered ones may not."""
    if explicit is not None:
        return explicit, True
    if environ.get("VOXBATCH_CONFIG"):
        return Path(environ["VOXBATCH_CONFIG"]), True
    system = Path(environ.get("VOXBATCH_SYSTEM_CONFIG") or SYSTEM_CONFIG)
    for candidate in (home / "voxbatch.toml", system):
        try:
            if candidate.is_file():
                return candidate, False
        except PermissionError as exc:
            denied = candidate.parent == home
            raise home_error(home, exc) if denied else _config_error(candidate, exc) from None
    return None, False


def _config_error(path: Path, exc: OSError) -> AccessError:
    return access_error(
        "read the config file",
        path,
        exc,
        hint="the user voxbatch runs as must be able to read it and enter its folder; for "
        "the service: chgrp voxbatch /etc/voxbatch /etc/voxbatch/voxbatch.toml && "
        "chmod 0750 /etc/voxbatch && chmod 0640 /etc/voxbatch/voxbatch.toml",
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except PermissionError as exc:
        raise _config_error(path, exc) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc


_ENV_SECTIONS: dict[str, type[BaseModel]] = {
    "mistral": MistralSettings,
    "daemon": DaemonSettings,
    "budget": BudgetSettings,
    "parts": PartSettings,
}
_TOP_LEVEL = {"home", "database", "ffmpeg", "log_level"}


def _env_layer(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """VOXBATCH_SECTION__KEY=value (and VOXBATCH_KEY for top-level keys).

    The first inbox can be tuned with VOXBATCH_INBOX__KEY; unknown names are errors
    so a typo never silently does nothing. Returns (settings, first-inbox settings).
    """
    layer: dict[str, Any] = {}
    inbox: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_META:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if "__" in rest:
            section, key = rest.split("__", 1)
            if section == "inbox" and key in InboxProfile.model_fields:
                inbox[key] = value
                continue
            model = _ENV_SECTIONS.get(section)
            if model is None or key not in model.model_fields:
                raise ConfigError(f"environment variable {name}: unknown setting {section}.{key}")
            layer.setdefault(section, {})[key] = value
        elif rest in _TOP_LEVEL:
            layer[rest] = value
        else:
            raise ConfigError(f"environment variable {name}: unknown setting {rest}")
    return layer, inbox


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _env_name(loc: tuple[Any, ...], environ: Mapping[str, str]) -> str:
    """The variable a setting came from, for error messages."""
    parts = [str(p) for p in loc]
    if parts[:2] == ["mistral", "base_url"] and environ.get("MISTRAL_BASE_URL"):
        return "MISTRAL_BASE_URL"
    if parts and parts[0] == "inbox" and len(parts) >= 3:
        return f"{ENV_PREFIX}INBOX__{parts[2].upper()}"
    if len(parts) >= 2:
        return f"{ENV_PREFIX}{parts[0].upper()}__{parts[1].upper()}"
    return f"{ENV_PREFIX}{parts[0].upper()}" if parts else ENV_PREFIX


def _describe(
    exc: ValidationError, source: str, environ: Mapping[str, str] | None = None
) -> ConfigError:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        where = source
        if environ is not None and err["loc"]:
            where = f"environment variable {_env_name(err['loc'], environ)}"
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key {key}")
        else:
            lines.append(f"{where}: {key}: {err['msg']}")
    return ConfigError("; ".join(lines))


def load_settings(
    *,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the one Settings object. `overrides` are command-line flags (nested dicts)."""
    env = os.environ if environ is None else environ
    env_layer, inbox0 = _env_layer(env)
    home = default_home(env)
    path, must_exist = find_config_file(config_file, env, home)

    data: dict[str, Any] = {"home": str(home)}
    if path is not None and (must_exist or path.exists()):
        file_data = _read_toml(path)
        if "api_key" in file_data.get("mistral", {}):
            raise ConfigError(
                f"{path}: mistral.api_key is not read from config files",
                hint="use MISTRAL_API_KEY, mistral.api_key_file or a systemd credential",
            )
        if "prices" in file_data:
            file_data["prices"] = _merge(DEFAULT_PRICES, file_data["prices"])
        try:
            Settings.model_validate({**data, **file_data})
        except ValidationError as exc:
            raise _describe(exc, str(path)) from exc
        data = _merge(data, file_data)
        data["config_file"] = str(path)

    data = _merge(data, env_layer)
    if env.get("MISTRAL_BASE_URL"):
        data = _merge(data, {"mistral": {"base_url": env["MISTRAL_BASE_URL"]}})
    if inbox0:
        inboxes = list(data.get("inbox") or [{}])
        inboxes[0] = {**dict(inboxes[0]), **inbox0}
        data["inbox"] = inboxes
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc, "environment", env) from exc

    if overrides:
        try:
            settings = Settings.model_validate(_merge(data, overrides))
        except ValidationError as exc:
            raise _describe(exc, "command line") from exc
    _check_inboxes(settings)
    return settings


def _check_inboxes(settings: Settings) -> None:
    seen: set[Path] = set()
    outboxes: dict[Path, InboxProfile] = {}
    for profile in settings.inbox:
        folder = settings.inbox_dir(profile)
        if folder in seen:
            raise ConfigError(f"inbox {folder} is configured twice")
        seen.add(folder)
        outbox = settings.outbox_dir(profile)
        other = outboxes.setdefault(outbox, profile)
        if other.shared != profile.shared:
            shared, private = (other, profile) if other.shared else (profile, other)
            raise ConfigError(
                f"the outbox {outbox} serves both the shared inbox {shared.path} and the "
                f"private inbox {private.path}",
                hint='give the shared inbox its own outbox: [[inbox]] outbox = "..."',
            )


def masked(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration as plain data, with the key shown only as present/absent."""
    data = settings.model_dump(mode="json")
    try:
        settings.api_key(environ)
        data["mistral"]["api_key"] = "*** (set)"
    except MissingKeyError:
        data["mistral"]["api_key"] = None
    return data


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EXTENSIONS",
    "DEFAULT_OUTPUTS",
    "DEFAULT_PRICES",
    "ENV_PREFIX",
    "OUTPUT_FORMATS",
    "SYSTEM_CONFIG",
    "BudgetSettings",
    "DaemonSettings",
    "InboxProfile",
    "MistralSettings",
    "ModelPrice",
    "OutputFormat",
    "PartSettings",
    "PriceTable",
    "Settings",
    "default_home",
    "find_config_file",
    "load_settings",
    "masked",
]
