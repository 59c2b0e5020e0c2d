"""The summary stages of a job: written summary (chat), spoken summary (speech), outputs.

Each stage is checkpointed in the `summary` table, keyed by the audio's content hash and the
recipe (chat model + prompt): a summary already bought is never bought again, by this job, a
retry of it, or a copy of the same audio, and a speech failure leaves the written summary
saved. Running this again after any failure resumes at the first missing stage.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from mistralai.client import Mistral
from sqlmodel import Session

from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import VoxbatchError
from voxbatch.ingest.folders import file_mode, make_folder, results_dir_mode
from voxbatch.prompts import summary_recipe
from voxbatch.stages.chat import ChatSummarizer
from voxbatch.stages.dedupe import Waiter, copy_verdict
from voxbatch.stages.publish import atomic_write, atomic_write_bytes, output_stem
from voxbatch.stages.speech import Voice, synthesize, voice_for
from voxbatch.store import jobs, summaries, transcripts
from voxbatch.store.db import Database
from voxbatch.store.models import Job, JobState, Summary, utcnow

EMPTY_TRANSCRIPT = "The transcript is empty: nothing was said to summarise."


@dataclass(frozen=True)
class SummaryOutcome:
    summary_path: Path
    speech_path: Path | None  # None when there was nothing to speak (empty transcript)
    bought_summary: bool
    bought_speech: bool
    # The job that paid for the summary, when it was not this one.
    reused_from_job: int | None = None

    @property
    def bought(self) -> bool:
        return self.bought_summary or self.bought_speech

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.summary_path,) + ((self.speech_path,) if self.speech_path else ())


def summary_markdown(source_name: str, text: str) -> str:
    return f"# Summary of {source_name}\n\n{text.strip()}\n"


async def run_summary_stages(
    settings: Settings,
    db: Database,
    job_id: int,
    profile: InboxProfile,
    out_dir: Path,
    *,
    api_key: str,
    stem: str | None = None,
    client: Mistral | None = None,
    poll_s: float = 0.5,
) -> SummaryOutcome:
    """Buy what is missing of the job's written and spoken summary, then write both files.

    Call it once the transcript is saved (state `transcribed`). `stem` is the name the
    transcript outputs were written under (`written[0].stem` from `write_outputs`); without it
    the stem is worked out as `write_outputs` does. The job is left in state `summarizing`:
    the caller publishes and sets `done`. Raises VoxbatchError subclasses (ProviderError,
    ConfigError for a missing ref_audio clip); whatever was bought before stays saved.
    """
    recipe = summary_recipe(settings, profile.summary_prompt)
    primary_id = await db.read_async(lambda session: session.get_one(Job, job_id).duplicate_of)
    if primary_id is not None:
        # A copy waits for the job buying this audio's summary rather than buy it twice.
        await _wait_for_primary(db, primary_id, recipe, poll_s)

    def begin(session: Session) -> tuple[str, str | None, str, Summary | None]:
        job = session.get_one(Job, job_id)
        transcript = transcripts.transcript_for(session, job)
        if transcript is None:
            raise VoxbatchError(f"job {job_id} has no transcript yet: nothing to summarise")
        text = transcript.text
        language = transcript.language or job.language or profile.language
        existing = summaries.summary_for(session, job.content_sha256, recipe)
        jobs.set_state(
            session,
            job,
            JobState.summarizing,
            stage="summary",
            detail="written summary already saved"
            if existing
            else f"summarising {len(text)} characters",
        )
        return text, language, job.source_name, existing

    text, language, source_name, existing = await db.write_through_faults(begin)
    speaks = bool(text.strip())
    # Read the voice (and a reference clip) once, first: a missing clip should not be found
    # after paying for the summary.
    voice = voice_for(settings, profile) if speaks else Voice()

    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = Mistral(
                api_key=api_key,
                server_url=settings.mistral.base_url,
                timeout_ms=int(settings.mistral.http_timeout_s * 1000),
            )
            stack.enter_context(client)  # closes its HTTP clients, sync and async
            await stack.enter_async_context(client)
        summary, bought_summary = await _written(
            settings, db, client, job_id, profile, recipe, existing, text, language
        )
        bought_speech = False
        if speaks and not _speech_matches(summary, settings, profile, voice):
            await _spoken(settings, db, client, job_id, profile, summary, voice)
            bought_speech = True

    summary_id = summary.id

    def reread(session: Session) -> Summary:
        found = session.get_one(Summary, summary_id)
        session.expunge(found)
        return found

    summary = await db.read_async(reread)
    # Files and their event in a store thread: no disk I/O on the event loop either.
    return await db.run(
        _write_files,
        db,
        job_id,
        profile,
        out_dir,
        stem,
        source_name,
        summary,
        bought_summary,
        bought_speech,
    )


async def _written(
    settings: Settings,
    db: Database,
    client: Mistral,
    job_id: int,
    profile: InboxProfile,
    recipe: str,
    existing: Summary | None,
    text: str,
    language: str | None,
) -> tuple[Summary, bool]:
    if existing is not None:
        return existing, False
    if text.strip():
        summarizer = ChatSummarizer(settings, db, client, job_id=job_id)
        chat = await summarizer.summarize(text, language=language, prompt=profile.summary_prompt)
        summary_text, model, parts = chat.text, chat.model, chat.parts
    else:
        summary_text, model, parts = EMPTY_TRANSCRIPT, settings.mistral.chat_model, 0

    def save(session: Session) -> Summary:
        job = session.get_one(Job, job_id)
        summary = summaries.save_summary(
            session,
            job_id=job_id,
            content_sha256=job.content_sha256,
            recipe=recipe,
            prompt=profile.summary_prompt,
            model=model,
            text=summary_text,
            language=language,
            parts=parts,
        )
        jobs.add_event(
            session,
            "summary_saved",
            f"{len(summary_text)} characters from {parts} part(s)",
            job_id=job_id,
        )
        session.expunge(summary)
        return summary

    return await db.write_through_faults(save), bool(text.strip())


async def _spoken(
    settings: Settings,
    db: Database,
    client: Mistral,
    job_id: int,
    profile: InboxProfile,
    summary: Summary,
    voice: Voice,
) -> None:
    assert summary.id is not None
    detail = f"speaking {len(summary.text)} characters ({voice.label}, {profile.speech_format})"

    def speaking(session: Session) -> None:
        job = session.get_one(Job, job_id)
        jobs.set_state(session, job, JobState.summarizing, stage="speech", detail=detail)

    await db.write_through_faults(speaking)
    speech = await synthesize(
        settings,
        db,
        client,
        job_id=job_id,
        text=summary.text,
        voice=voice,
        response_format=profile.speech_format,
    )
    summary_id = summary.id

    def save(session: Session) -> None:
        summaries.save_speech(
            session,
            summary_id,
            job_id=job_id,
            audio=speech.audio,
            fmt=speech.format,
            voice=speech.voice,
            model=speech.model,
        )
        jobs.add_event(
            session, "speech_saved", f"{len(speech.audio)} bytes of {speech.format}", job_id=job_id
        )

    await db.write_through_faults(save)


def _speech_matches(
    summary: Summary, settings: Settings, profile: InboxProfile, voice: Voice
) -> bool:
    """Whether the stored speech is what this profile asks for: format, model and voice (a
    clip's label holds its hash, so a changed clip is a changed voice)."""
    return summary.speech_audio is not None and (
        summary.speech_format,
        summary.speech_model,
        summary.speech_voice,
    ) == (profile.speech_format, settings.mistral.tts_model, voice.label)


def _write_files(
    db: Database,
    job_id: int,
    profile: InboxProfile,
    out_dir: Path,
    stem: str | None,
    source_name: str,
    summary: Summary,
    bought_summary: bool,
    bought_speech: bool,
) -> SummaryOutcome:
    assert summary.id is not None
    try:
        make_folder(out_dir, results_dir_mode(profile.shared))
        mode = file_mode(profile.shared)
        name = stem or output_stem(out_dir, source_name, job_id, profile.outputs)
        summary_path = out_dir / f"{name}.summary.md"
        atomic_write(summary_path, summary_markdown(source_name, summary.text), mode=mode)
        speech_path = None
        if summary.speech_audio is not None:
            speech_path = out_dir / f"{name}.summary.{summary.speech_format}"
            atomic_write_bytes(speech_path, summary.speech_audio, mode=mode)
    except OSError as exc:
        raise VoxbatchError(
            f"cannot write the summary to {out_dir}: {exc.strerror}",
            hint=f"the summary is saved: `voxbatch export {job_id} --format summary` "
            "or `voxbatch retry` writes it at no cost",
        ) from exc
    reused = None if summary.job_id == job_id else summary.job_id
    with db.write() as session:
        written = ", ".join(p.name for p in (summary_path, speech_path) if p is not None)
        detail = f"wrote {written}" + (f" (bought by job {reused})" if reused else "")
        jobs.add_event(session, "summary_written", detail, job_id=job_id)
    return SummaryOutcome(summary_path, speech_path, bought_summary, bought_speech, reused)


async def _wait_for_primary(db: Database, primary_id: int, recipe: str, poll_s: float) -> None:
    """Until the primary job ends, has its summary and speech, or its worker is gone."""

    def settled(session: Session) -> bool:
        primary = session.get_one(Job, primary_id)
        summary = summaries.summary_for(session, primary.content_sha256, recipe)
        has_it = summary is not None and summary.speech_audio is not None
        # Unless it is being worked on now, this job buys what is missing.
        return not copy_verdict(primary, has_it=has_it, waiter=Waiter.running, now=utcnow()).wait

    while True:  # another process's job: there is no event to wait on, only its rows
        if await db.read_async(settled):
            return
        await asyncio.sleep(poll_s)
