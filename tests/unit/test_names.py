"""Derived names fit NAME_MAX, cut between characters, and stay apart when shortened."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voxbatch.names import NAME_MAX, fit, note_name, shorten
from voxbatch.stages.publish import atomic_write, output_stem


def _size(name: str) -> int:
    return len(os.fsencode(name))


@pytest.mark.parametrize("char", ["a", "é", "日", "😀", "\udcff"])  # 1 to 4 bytes, and a raw byte
@pytest.mark.parametrize("tail", ["", ".error.txt", " (12).wav"])
def test_fit_stays_within_name_max_and_cuts_between_characters(char: str, tail: str) -> None:
    name = char * 300
    fitted = fit(name, tail, head=".")
    assert _size(fitted) <= NAME_MAX
    assert fitted.startswith("." + char) and fitted.endswith(tail)
    os.fsencode(fitted).decode("utf-8", "surrogateescape")  # whole characters only
    assert _size(fit(name, tail, head=".")) >= NAME_MAX - 3  # no more shortened than needed


def test_short_names_are_kept_and_long_ones_that_start_alike_stay_apart() -> None:
    assert note_name("talk.wav") == "talk.wav.error.txt"
    assert shorten("x" * NAME_MAX) == "x" * NAME_MAX
    first, second = "é" * 127 + "1", "é" * 127 + "2"
    assert note_name(first) != note_name(second)
    assert _size(note_name(first)) <= NAME_MAX


def test_outputs_and_their_temporary_names_fit(tmp_path: Path) -> None:
    source = "日" * 82 + ".wav"  # 250 bytes
    stem = output_stem(tmp_path, source, 123456, ["txt"])
    assert _size(f"{stem}-123456.summary.opus") <= NAME_MAX
    path = tmp_path / f"{stem}.json"
    atomic_write(path, "{}")  # its temporary name is longer still
    assert path.read_text() == "{}"
