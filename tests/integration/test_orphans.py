"""Originals in work/ that the database does not know (it was deleted, or restored from an
older backup): never overwritten by a new claim, set aside with a note."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli_for
from tests.helpers.daemon import originals
from tests.helpers.media import wav_bytes
from voxbatch.emulator import Emulator

pytestmark = pytest.mark.media  # they run ffmpeg


def test_an_original_in_work_unknown_to_the_database_is_set_aside_not_overwritten(
    emulator: Emulator, isolated_env: Path
) -> None:
    home = isolated_env
    (home / "work").mkdir(parents=True)
    lost = wav_bytes(1, tag=1)
    (home / "work" / "1.wav").write_bytes(lost)  # job 1 of a database that is gone
    (home / "work" / ".2.wav.copying").write_bytes(b"half a copy")  # not an original
    (home / "inbox").mkdir()
    (home / "inbox" / "new.wav").write_bytes(wav_bytes(1, tag=2))  # job 1 of the new one
    cli = cli_for(emulator, VOXBATCH_DAEMON__STABLE_SECONDS="0.2")
    result = cli("run", "--once", ok=None)
    assert result.exit_code == 0, result.stderr[-2000:]
    assert originals(home / "done") == {"new.wav"}
    assert (home / "quarantine" / "1.wav").read_bytes() == lost
    note = (home / "quarantine" / "1.wav.error.txt").read_text()
    assert "no job of the database knows it" in note
    assert originals(home / "work") == {".2.wav.copying"}
