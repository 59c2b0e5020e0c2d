"""Subtitle shaping: short lines, few lines a cue, a few seconds a cue, no word lost."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pysubs2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voxbatch.documents import TimedText, TranscriptDocument
from voxbatch.documents.subtitles import CueShape, shape_cues, speaker_label, timed_segments
from voxbatch.stages.publish import render

LONG = (
    "so the first thing we did when the server arrived was to unpack it and check that "
    "every disk was where the invoice said it would be, then we racked it, cabled it, "
    "booted it and waited for the fans to settle before anyone dared to install anything"
)


def document(*segments: TimedText, text: str = "") -> TranscriptDocument:
    return TranscriptDocument(
        job_id=1,
        source_name="talk.mp3",
        content_sha256="ab" * 32,
        text=text or " ".join(s.text for s in segments),
        language="en",
        model="m",
        duration_seconds=120.0,
        cost_usd=Decimal(0),
        segments=segments,
    )


def test_a_long_segment_becomes_short_cues_of_short_lines() -> None:
    doc = document(TimedText(3.0, 63.0, " " + LONG))
    for fmt in ("srt", "vtt"):
        subs = pysubs2.SSAFile.from_string(render(doc, fmt))
        assert len(subs) > 1
        for event in subs:
            lines = event.plaintext.split("\n")
            assert len(lines) <= 2, lines
            assert all(len(line) <= 42 for line in lines), lines
            assert event.end - event.start <= 7000
        assert subs[0].start == 3000 and subs[-1].end == 63000
        words = " ".join(e.plaintext.replace("\n", " ") for e in subs).split()
        assert words == LONG.split()


def test_time_is_shared_in_proportion_to_the_words_length() -> None:
    cues = shape_cues([TimedText(0.0, 10.0, "aaaa bbbbbb")], CueShape(4, 1))
    assert [(c.start, c.end, c.lines) for c in cues] == [
        (0.0, 4.0, ("aaaa",)),
        (4.0, 10.0, ("bbbbbb",)),  # a word longer than a line keeps a line of its own
    ]


def test_the_shape_is_configurable() -> None:
    doc = document(TimedText(0.0, 60.0, LONG))
    wide = pysubs2.SSAFile.from_string(render(doc, "srt", CueShape(60, 3, 20.0)))
    narrow = pysubs2.SSAFile.from_string(render(doc, "srt", CueShape(20, 1, 3.0)))
    assert len(wide) < len(narrow)
    assert any(len(line) > 42 for e in wide for line in e.plaintext.split("\n"))
    assert all(len(e.plaintext) <= 20 and e.end - e.start <= 3000 for e in narrow)


def test_speakers_are_voice_tags_in_vtt_and_labels_in_srt_and_txt() -> None:
    doc = document(
        TimedText(0.0, 2.0, " hello there", "speaker_1"),
        TimedText(2.0, 4.0, " a <b> & c", None),
        TimedText(4.0, 6.0, " hi", "speaker_2"),
        TimedText(6.0, 7.0, " again", "speaker_2"),
    )
    vtt = render(doc, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n<v speaker_1>hello there\n")
    assert "\na &lt;b&gt; &amp; c\n" in vtt  # no voice tag without a speaker; text escaped
    assert "[speaker_1]" not in vtt
    srt = render(doc, "srt")
    assert [block.split("\n", 2)[2] for block in srt.strip().split("\n\n")] == [
        "[speaker_1] hello there",
        "a <b> & c",
        "[speaker_2] hi",
        "[speaker_2] again",
    ]
    assert render(doc, "txt") == ("[speaker_1] hello there\n\na <b> & c\n\n[speaker_2] hi again\n")


def test_tsv_is_whispers_start_end_text_in_milliseconds() -> None:
    doc = document(TimedText(0.5, 1.25, " hello\tworld"), TimedText(None, None, " again"))
    assert render(doc, "tsv") == "start\tend\ttext\n500\t1250\thello world\n1250\t2250\tagain\n"


segment_st = st.builds(
    lambda gap, length, words, speaker: (gap, length, " ".join(words), speaker),
    st.floats(0, 5),
    st.floats(0.01, 90),
    st.lists(st.text("abcdefghij", min_size=1, max_size=60), min_size=1, max_size=80),
    st.sampled_from([None, "speaker_1", "speaker_22"]),
)


@settings(max_examples=150, deadline=None)
@given(
    raw=st.lists(segment_st, max_size=8),
    shape=st.builds(CueShape, st.integers(10, 80), st.integers(1, 4), st.floats(0.5, 20)),
    prefix=st.booleans(),
)
def test_cues_keep_the_shape_the_order_and_every_word(
    raw: list[tuple[float, float, str, str | None]], shape: CueShape, prefix: bool
) -> None:
    segments, at = [], 0.0
    for gap, length, text, speaker in raw:
        segments.append(TimedText(at + gap, at + gap + length, text, speaker))
        at += gap + length
    cues = shape_cues(segments, shape, speaker_prefix=prefix)

    words = [w for seg in timed_segments(segments) for w in seg.text.split()]
    assert [w for cue in cues for line in cue.lines for w in line.split()] == words
    for before, after in pairwise(cues):
        assert before.end <= after.start
    for cue in cues:
        assert cue.start < cue.end
        assert 1 <= len(cue.lines) <= shape.max_lines
        shown = [speaker_label(cue.speaker) + cue.lines[0], *cue.lines[1:]] if prefix else cue.lines
        for line in shown:
            # Longer only when a single word (after the speaker label) does not fit.
            assert (
                len(line) <= shape.max_line_chars
                or len(line.split()) == 1
                or (prefix and cue.speaker and line == shown[0] and len(cue.lines[0].split()) == 1)
            )
        if len(cue.text.split()) > 1:
            assert cue.end - cue.start <= shape.max_cue_seconds + 1e-9


@pytest.mark.media
def test_the_inbox_profile_shapes_what_is_published(isolated_env: Path, tmp_path: Path) -> None:
    import asyncio

    from tests.helpers.fakes import FakeTranscriber
    from tests.helpers.media import wav_bytes
    from voxbatch.config import InboxProfile, Settings
    from voxbatch.process import ProcessRun
    from voxbatch.stages.pipeline import Pipeline
    from voxbatch.store.db import open_database

    profile = InboxProfile(outputs=("srt",), subtitle_line_chars=12, subtitle_lines=1)
    settings = Settings(home=isolated_env, inbox=(profile,))
    clip = tmp_path / "talk.wav"
    clip.write_bytes(wav_bytes(3.0))
    fake = FakeTranscriber(text="hello from the fake transcriber")
    with open_database(settings.db_path) as db:
        run = ProcessRun(Pipeline.open(settings, db, transcriber=lambda: fake))
        [done] = asyncio.run(run.process_paths([clip], profile=profile, out_dir=tmp_path / "out"))
    subs = pysubs2.SSAFile.from_string(done.outputs[0].read_text())
    assert [e.plaintext for e in subs] == ["hello from", "the fake", "transcriber"]
