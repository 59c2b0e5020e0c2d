"""`voxbatch demo`: the whole pipeline, offline, against the built-in emulator."""

from __future__ import annotations

import contextlib
import importlib.resources
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from voxbatch.cli.render import segment_line, table
from voxbatch.errors import InputError

AUDIO_SUFFIXES = {".wav", ".mp3", ".ogg", ".opus", ".m4a", ".flac", ".mp4", ".webm", ".aac"}


@click.command()
@click.option(
    "--samples",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of clips to process (default: the clips shipped with voxbatch).",
)
@click.option("--keep", is_flag=True, help="Keep the home (else removed at exit) and print where.")
def demo(samples: Path | None, keep: bool) -> None:
    """Try the whole pipeline offline: built-in emulator, sample clips, temporary home."""
    sys.exit(run_demo(samples, keep=keep))


@contextlib.contextmanager
def bundled_clips() -> Iterator[list[Path]]:
    """The sample clips shipped as package data (voxbatch/sample_audio/), as real files for
    ffmpeg: in place from a normal install, extracted for the while otherwise (a zipped one)."""
    folder = importlib.resources.files("voxbatch").joinpath("sample_audio")
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(importlib.resources.as_file(entry))
            for entry in sorted(folder.iterdir(), key=lambda e: e.name)
            if Path(entry.name).suffix.lower() in AUDIO_SUFFIXES
        ]


def _clips(folder: Path | None) -> contextlib.AbstractContextManager[list[Path]]:
    if folder is None:
        return bundled_clips()
    return contextlib.nullcontext(
        sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    )


def run_demo(samples: Path | None, *, keep: bool = False) -> int:
    with _clips(samples) as clips:
        if not clips:
            raise InputError(f"no audio clips in {samples}")
        return _demo(clips, keep=keep)


def _demo(clips: list[Path], *, keep: bool) -> int:
    import asyncio
    import shutil
    import tempfile

    from voxbatch.cli.progress import StderrReporter
    from voxbatch.config import MistralSettings, Settings
    from voxbatch.emulator import EmulatorConfig, running_emulator
    from voxbatch.ops import reports
    from voxbatch.process import ProcessRun
    from voxbatch.providers.realtime import ClientSettings, RealtimeTranscriber
    from voxbatch.stages.pipeline import Pipeline
    from voxbatch.store import jobs, transcripts
    from voxbatch.store.db import open_database
    from voxbatch.store.models import Job

    home = Path(tempfile.mkdtemp(prefix="voxbatch-demo-"))
    try:
        with running_emulator(EmulatorConfig()) as emulator:
            # The home is removed at exit: its path is only worth printing when it is kept.
            where = f"home {home} (kept)" if keep else "a temporary home, removed at exit"
            click.echo(f"emulator at {emulator.base_url}; {where}", err=True)
            settings = Settings(home=home, mistral=MistralSettings(base_url=emulator.base_url))
            db = open_database(settings.db_path)
            client = ClientSettings(api_key="demo", base_url=emulator.base_url)
            reporter = StderrReporter(len(clips))
            pipeline = Pipeline.open(
                settings, db, transcriber=lambda: RealtimeTranscriber(client), reporter=reporter
            )
            outcomes = asyncio.run(
                ProcessRun(pipeline, reporter).process_paths(
                    clips, profile=settings.inbox[0], out_dir=settings.folder("outbox")
                )
            )
        with db.read() as session:
            rows = reports.job_rows(session, jobs.list_jobs(session, limit=0)[::-1])
            click.echo(
                table(rows, ["id", "state", "file", "audio_seconds", "language", "cost_usd"])
            )
            first = next((o for o in outcomes if o.ok), None)
            if first is not None and first.job_id is not None:
                job = session.get_one(Job, first.job_id)
                transcript = transcripts.transcript_for(session, job)
                assert transcript is not None and transcript.id is not None
                click.echo(f"\nTranscript of {job.source_name} (job {job.id}):")
                for seg in transcripts.segments_for(session, transcript.id):
                    click.echo("  " + segment_line(seg.start, seg.end, seg.text, seg.speaker))
        click.echo(
            "\nThe emulator cannot recognise speech: each word stands for one voiced stretch "
            "of the audio, with its real timing.",
            err=True,
        )
        db.close()
        return 0 if all(o.ok for o in outcomes) else 1
    finally:
        if keep:
            click.echo(f"kept {home}", err=True)
        else:
            shutil.rmtree(home, ignore_errors=True)
