"""Configuration precedence, validation and key resolution."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

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
