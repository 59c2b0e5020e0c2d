"""Legal names of up to 255 bytes (NAME_MAX): every name voxbatch derives from them fits too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # the daemon probes every file with ffmpeg

NAME_MAX = 255


def _name(stem_char: str, total: int, ext: str = ".wav") -> str:
    """A name of exactly `total` bytes in UTF-8, made of multibyte `stem_char`s."""
    width = len(stem_char.encode())
    room = total - len(ext.encode())
    name = stem_char * (room // width) + "a" * (room % width) + ext
    assert len(name.encode()) == total
    return name


def _all_names(folder: Path) -> list[bytes]:
    return [os.fsencode(name) for _, dirs, files in os.walk(folder) for name in dirs + files]


@pytest.mark.parametrize(("size", "char"), [(255, "é"), (241, "日")])
def test_the_longest_legal_names_go_through_the_daemon(
    emulator: Emulator, isolated_env: Path, size: int, char: str
) -> None:
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    good, bad = _name(char, size), _name("ü", size)
    (inbox / good).write_bytes(wav_bytes(2.0))
    (inbox / bad).write_text("this is not audio")
    cli = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")
    result = cli("run", "--once", ok=None)
    assert result.exit_code == 1, result.stderr  # the bad file failed, the good one did not

    home = isolated_env
    assert _all_names(home / "work") == []
    assert sorted(p.name for p in (home / "done").iterdir()) == [good]
    failed = sorted(p.name for p in (home / "failed").iterdir())
    assert len(failed) == 2 and bad in failed, failed
    [note] = [name for name in failed if name != bad]
    assert note.endswith(".error.txt") and "ü" in note
    assert "not an audio" in (home / "failed" / note).read_text()
    outputs = sorted(p.name for p in (home / "outbox").iterdir())
    assert [Path(name).suffix for name in outputs] == [".json", ".srt", ".txt", ".vtt"]
    assert all(name.startswith(char * 10) for name in outputs), outputs
    for folder in ("done", "failed", "outbox"):
        assert all(len(n) <= NAME_MAX for n in _all_names(home / folder))
    assert "Traceback" not in result.stderr


def test_a_second_file_of_the_longest_name_gets_a_numbered_name_that_fits(
    emulator: Emulator, isolated_env: Path
) -> None:
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    good, bad = _name("é", 255), _name("ü", 255)
    cli = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")
    for tag in (1, 2):
        (inbox / good).write_bytes(wav_bytes(1.0, tag=tag))
        (inbox / bad).write_text(f"not audio either, take {tag}")
        assert cli("run", "--once", ok=None).exit_code == 1
    home = isolated_env
    assert _all_names(home / "work") == []
    done = sorted(p.name for p in (home / "done").iterdir())
    assert len(done) == 2 and good in done
    assert next(name for name in done if name != good).endswith(" (1).wav")
    failed = sorted(p.name for p in (home / "failed").iterdir())
    assert len(failed) == 4  # two originals, two notes
    assert sum(name.endswith(".error.txt") for name in failed) == 2
    for folder in ("done", "failed", "outbox"):
        assert all(len(n) <= NAME_MAX for n in _all_names(home / folder))


def test_run_once_exits_1_when_a_paid_file_cannot_be_filed(
    emulator: Emulator, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import voxbatch.daemon.filing

    def refuse(src: Path, dst: Path) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(voxbatch.daemon.filing, "move", refuse)
    inbox = isolated_env / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "talk.wav").write_bytes(wav_bytes(1.0))
    result = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")("run", "--once", ok=None)
    assert result.exit_code == 1, result.stderr
    assert "cannot move its original" in result.stderr
