"""Configuration precedence, validation and key resolution."""

from __future__ import annotations

import builtins
import io
import json
import os
import pwd
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import SYSTEM_CONFIG as DEFAULT_SYSTEM_CONFIG
from tests.conftest import Cli
from voxbatch.config import load_settings, masked
from voxbatch.errors import ConfigError, MissingKeyError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_the_spec(tmp_path: Path) -> None:
    s = load_settings(environ={"VOXBATCH_HOME": str(tmp_path)})
    assert s.home == tmp_path
    assert s.db_path == tmp_path / "voxbatch.db"
    assert s.mistral.base_url == "https://api.mistral.ai"
    assert s.mistral.transcription_model == "voxtral-mini-transcribe-realtime-2602"
    assert s.daemon.concurrency == 4 and s.daemon.pace == 0
    assert [str(i.path) for i in s.inbox] == ["inbox"]
    assert s.inbox[0].outputs == ("txt", "srt", "vtt", "json")
    price = s.prices.models["voxtral-mini-transcribe-realtime-2602"].per_audio_minute
    assert price == Decimal("0.006")


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "v.toml",
        '[daemon]\nconcurrency = 2\npace = 1.5\n[mistral]\nbase_url = "http://file:1"\n',
    )
    env = {
        "VOXBATCH_HOME": str(tmp_path),
        "VOXBATCH_DAEMON__CONCURRENCY": "3",
    }
    s = load_settings(config_file=cfg, environ=env)
    assert s.daemon.concurrency == 3  # env beats file
    assert s.daemon.pace == 1.5  # file beats default
    assert s.mistral.base_url == "http://file:1"
    s = load_settings(config_file=cfg, environ={**env, "MISTRAL_BASE_URL": "http://env:2/"})
    assert s.mistral.base_url == "http://env:2"
    s = load_settings(config_file=cfg, environ=env, overrides={"daemon": {"concurrency": 7}})
    assert s.daemon.concurrency == 7  # flags beat everything


def test_config_found_in_home_and_env_var(tmp_path: Path) -> None:
    write(tmp_path / "voxbatch.toml", "[daemon]\nconcurrency = 5\n")
    assert load_settings(environ={"VOXBATCH_HOME": str(tmp_path)}).daemon.concurrency == 5
    other = write(tmp_path / "other.toml", "[daemon]\nconcurrency = 6\n")
    env = {"VOXBATCH_HOME": str(tmp_path), "VOXBATCH_CONFIG": str(other)}
    s = load_settings(environ=env)
    assert s.daemon.concurrency == 6
    assert s.config_file == other


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    cfg = write(tmp_path / "v.toml", "[daemon]\nconcurency = 2\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})
    assert str(cfg) in str(err.value) and "daemon.concurency" in str(err.value)


def test_unknown_inbox_key_and_bad_values(tmp_path: Path) -> None:
    cfg = write(tmp_path / "v.toml", '[[inbox]]\npath = "a"\nlanguge = "en"\n')
    with pytest.raises(ConfigError, match=r"inbox\.0\.languge"):
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})
    cfg = write(tmp_path / "v.toml", '[[inbox]]\noutputs = ["txt", "docx"]\n')
    with pytest.raises(ConfigError, match="outputs"):
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})
    cfg = write(tmp_path / "v.toml", '[[inbox]]\nlanguage = "english"\n')
    with pytest.raises(ConfigError, match="ISO 639-1"):
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})


def test_subtitle_shape_is_set_per_inbox_with_the_common_norms_by_default(
    tmp_path: Path,
) -> None:
    cfg = write(
        tmp_path / "v.toml",
        '[[inbox]]\npath = "a"\n[[inbox]]\npath = "b"\nsubtitle_line_chars = 37\n'
        'subtitle_lines = 1\nsubtitle_cue_seconds = 5.5\noutputs = ["srt", "tsv"]\n',
    )
    s = load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})
    first, second = s.inbox
    assert (first.subtitle_line_chars, first.subtitle_lines, first.subtitle_cue_seconds) == (
        42,
        2,
        7.0,
    )
    assert (second.subtitle_line_chars, second.subtitle_lines, second.subtitle_cue_seconds) == (
        37,
        1,
        5.5,
    )
    assert second.outputs == ("srt", "tsv")
    env = {"VOXBATCH_HOME": str(tmp_path), "VOXBATCH_INBOX__SUBTITLE_LINES": "3"}
    assert load_settings(environ=env).inbox[0].subtitle_lines == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("subtitle_line_chars = 4", r"subtitle_line_chars: .*greater than or equal to 10"),
        ("subtitle_lines = 0", r"subtitle_lines: .*greater than or equal to 1"),
        ("subtitle_cue_seconds = 600", r"subtitle_cue_seconds: .*less than or equal to 60"),
        ('subtitle_lines = "two"', r"subtitle_lines: .*integer"),
    ],
)
def test_bad_subtitle_shape_is_a_clear_config_error(
    tmp_path: Path, line: str, message: str
) -> None:
    cfg = write(tmp_path / "v.toml", f"[[inbox]]\n{line}\n")
    with pytest.raises(ConfigError, match=r"v\.toml: inbox\.0\." + message) as caught:
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})
    assert "\n" not in str(caught.value)


def test_invalid_toml_and_missing_explicit_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "v.toml", "[daemon\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nope.toml", environ={"VOXBATCH_HOME": str(tmp_path)})


def test_unknown_environment_variable_is_an_error(tmp_path: Path) -> None:
    env = {"VOXBATCH_HOME": str(tmp_path), "VOXBATCH_DAEMON__CONCURENCY": "2"}
    with pytest.raises(ConfigError, match="VOXBATCH_DAEMON__CONCURENCY"):
        load_settings(environ=env)
    with pytest.raises(ConfigError, match="environment"):
        load_settings(environ={"VOXBATCH_HOME": str(tmp_path), "VOXBATCH_DAEMON__PACE": "fast"})


def test_env_tunes_first_inbox(tmp_path: Path) -> None:
    env = {
        "VOXBATCH_HOME": str(tmp_path),
        "VOXBATCH_INBOX__LANGUAGE": "fr",
        "VOXBATCH_INBOX__CONTEXT_BIAS": "Voxtral, Kubernetes",
    }
    s = load_settings(environ=env)
    assert s.inbox[0].language == "fr"
    assert s.inbox[0].context_bias == ("Voxtral", "Kubernetes")


def test_state_directory_under_systemd(tmp_path: Path) -> None:
    s = load_settings(environ={"STATE_DIRECTORY": f"{tmp_path}:/other"})
    assert s.home == tmp_path


def test_prices_override_is_merged_and_dated(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "v.toml",
        '[prices]\neffective = "2027-01-01"\n'
        '"voxtral-mini-transcribe-realtime-2602" = { per_audio_minute = 0.012 }\n',
    )
    s = load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})
    assert s.prices.effective.isoformat() == "2027-01-01"
    assert s.prices.models["voxtral-mini-transcribe-realtime-2602"].per_audio_minute == Decimal(
        "0.012"
    )
    assert "mistral-small-latest" in s.prices.models  # defaults kept


def test_api_key_sources_in_order(tmp_path: Path) -> None:
    s = load_settings(environ={"VOXBATCH_HOME": str(tmp_path)})
    with pytest.raises(MissingKeyError, match="MISTRAL_API_KEY"):
        s.api_key({})
    creds = tmp_path / "creds"
    creds.mkdir()
    write(creds / "mistral_api_key", "from-systemd\n")
    assert s.api_key({"CREDENTIALS_DIRECTORY": str(creds)}) == "from-systemd"
    keyfile = write(tmp_path / "key", "  from-file \n")
    s2 = load_settings(
        config_file=write(tmp_path / "v.toml", f'[mistral]\napi_key_file = "{keyfile}"\n'),
        environ={"VOXBATCH_HOME": str(tmp_path)},
    )
    assert s2.api_key({"CREDENTIALS_DIRECTORY": str(creds)}) == "from-file"
    assert s2.api_key({"MISTRAL_API_KEY": "from-env"}) == "from-env"


def test_key_in_config_file_is_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path / "v.toml", '[mistral]\napi_key = "sk-secret"\n')
    with pytest.raises(ConfigError, match="not read from config files"):
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})


def test_masked_never_shows_the_key(tmp_path: Path) -> None:
    s = load_settings(environ={"VOXBATCH_HOME": str(tmp_path)})
    data = masked(s, {"MISTRAL_API_KEY": "sk-very-secret-key-123"})
    assert "sk-very-secret-key-123" not in repr(data)
    assert "123" not in data["mistral"]["api_key"]
    assert masked(s, {})["mistral"]["api_key"] is None


def test_same_inbox_twice_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path / "v.toml", '[[inbox]]\npath = "a"\n[[inbox]]\npath = "a"\n')
    with pytest.raises(ConfigError, match="configured twice"):
        load_settings(config_file=cfg, environ={"VOXBATCH_HOME": str(tmp_path)})


# --- the system-wide file, and a suite that never reads the machine's -------------------------


def test_the_system_file_is_read_from_where_voxbatch_system_config_says(tmp_path: Path) -> None:
    assert Path("/etc/voxbatch/voxbatch.toml") == DEFAULT_SYSTEM_CONFIG  # unless moved
    system = write(tmp_path / "system.toml", "[daemon]\nconcurrency = 9\n")
    home = tmp_path / "home"
    env = {"VOXBATCH_HOME": str(home), "VOXBATCH_SYSTEM_CONFIG": str(system)}
    s = load_settings(environ=env)
    assert s.daemon.concurrency == 9 and s.config_file == system
    home.mkdir()
    write(home / "voxbatch.toml", "[daemon]\nconcurrency = 5\n")
    assert load_settings(environ=env).daemon.concurrency == 5  # the home's file comes first
    (home / "voxbatch.toml").unlink()
    write(system, "[daemon\n")
    with pytest.raises(ConfigError, match=re.escape(f"{system}: invalid TOML")):
        load_settings(environ=env)


def test_loading_settings_in_tests_never_touches_etc_voxbatch_or_the_real_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stray /etc/voxbatch/voxbatch.toml cannot change a test's configuration: every way the
    suite loads settings runs while each stat() and open() is recorded, and none names it."""
    real_state = Path(pwd.getpwuid(os.getuid()).pw_dir) / ".local" / "share" / "voxbatch"
    touched: list[str] = []

    def spy(real):  # type: ignore[no-untyped-def]
        def call(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not isinstance(path, int):
                touched.append(os.path.abspath(os.fsdecode(path)))
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "stat", spy(os.stat))
    monkeypatch.setattr(io, "open", spy(io.open))  # what pathlib opens files with
    monkeypatch.setattr(builtins, "open", spy(builtins.open))

    load_settings()  # the process environment, as the CLI and the daemon read it
    load_settings(environ={"VOXBATCH_HOME": str(tmp_path)})  # an explicit one, as tests do
    without_home = load_settings(environ={})  # ~/.local/share/voxbatch
    shown = json.loads(Cli({})("config", "show", "--json").stdout)
    assert any(path.startswith(str(tmp_path)) for path in touched)  # the spy saw the lookups
    strays = [p for p in touched if p.startswith(("/etc/voxbatch", str(real_state)))]
    assert strays == []
    assert without_home.home.is_relative_to(tmp_path)  # ~ is a temporary folder
    assert without_home.config_file is None and shown["config_file"] is None


def test_subprocesses_get_the_temporary_home_and_system_file(tmp_path: Path) -> None:
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "VOXBATCH_HOME"):
        assert Path(os.environ[name]).is_relative_to(tmp_path), name
    system = Path(os.environ["VOXBATCH_SYSTEM_CONFIG"])
    assert system.is_relative_to(tmp_path)
    system.parent.mkdir(parents=True, exist_ok=True)
    write(system, "[daemon]\nconcurrency = 9\n")
    shown = subprocess.run(
        [sys.executable, "-m", "voxbatch", "config", "show", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["config_file"] == str(system) and data["daemon"]["concurrency"] == 9
    assert data["home"] == os.environ["VOXBATCH_HOME"]
