"""Spoken summaries: text to speech through the SDK, with a preset voice or a cloned one.

`POST /v1/audio/speech` takes `voice_id` or `ref_audio` (a base64 clip for zero-shot voice
cloning) and answers `{"audio_data": <base64 of the whole file>}` in `response_format`.
Speech is billed by input characters, which are known before sending.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from mistralai.client import Mistral
from mistralai.client.models import SpeechOutputFormat, SpeechResponse
from mistralai.client.types import UNSET

from voxbatch.accounting.paid_calls import (
    PaidCall,
    Settlement,
    call_with_retries,
    unknown_call_cost,
)
from voxbatch.accounting.prices import tts_charge
from voxbatch.config import InboxProfile, Settings
from voxbatch.errors import ConfigError, ProviderError
from voxbatch.store.db import Database
from voxbatch.store.models import CallKind

# A reference clip is a few seconds of speech; anything this large is a mistake.
MAX_REF_AUDIO_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Voice:
    """Who speaks: a preset voice, a reference clip to clone, or the model's default."""

    voice_id: str | None = None
    ref_audio_b64: str | None = None
    label: str = "default"


@dataclass(frozen=True)
class SpeechAudio:
    audio: bytes
    format: str
    voice: str
    model: str
    characters: int


def ref_audio_path(settings: Settings, profile: InboxProfile) -> Path | None:
    """The profile's reference clip; relative paths are under VOXBATCH_HOME."""
    if profile.ref_audio is None:
        return None
    path = profile.ref_audio.expanduser()
    return path if path.is_absolute() else settings.home / path


def voice_for(settings: Settings, profile: InboxProfile) -> Voice:
    """Read the voice the profile asks for; a missing or unreadable clip is a config error."""
    path = ref_audio_path(settings, profile)
    if path is None:
        if profile.voice_id:
            return Voice(voice_id=profile.voice_id, label=profile.voice_id)
        return Voice()
    try:
        if path.stat().st_size > MAX_REF_AUDIO_BYTES:
            raise ConfigError(
                f"ref_audio clip {path} is larger than {MAX_REF_AUDIO_BYTES // 2**20} MiB",
                hint="a few seconds of clear speech is what voice cloning needs",
            )
        clip = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"ref_audio clip {path} does not exist",
            hint="set ref_audio to an audio file (relative paths are under VOXBATCH_HOME) "
            "or use voice_id",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read ref_audio clip {path}: {exc.strerror}") from None
    if not clip:
        raise ConfigError(f"ref_audio clip {path} is empty")
    digest = hashlib.sha256(clip).hexdigest()[:16]
    return Voice(ref_audio_b64=base64.b64encode(clip).decode("ascii"), label=f"ref:{digest}")


async def synthesize(
    settings: Settings,
    db: Database,
    client: Mistral,
    *,
    job_id: int | None,
    text: str,
    voice: Voice,
    response_format: str,
) -> SpeechAudio:
    """Speak `text`; one api_call row (kind tts) per attempt, priced by input characters."""
    model = settings.mistral.tts_model
    characters = len(text)
    charge = tts_charge(settings.prices, model, characters)

    fmt = cast(SpeechOutputFormat, response_format)

    async def send() -> SpeechResponse:
        # Only the voice field in use is sent: a null one is not the same as an absent one.
        return await client.audio.speech.complete_async(
            input=text,
            model=model,
            voice_id=voice.voice_id or UNSET,
            ref_audio=voice.ref_audio_b64 or UNSET,
            response_format=fmt,
            timeout_ms=int(settings.mistral.http_timeout_s * 1000),
        )

    def settle(_: SpeechResponse) -> Settlement:
        return Settlement(charge.cost_usd, charge.price_basis, characters=characters)

    def uncertain() -> Settlement:
        return unknown_call_cost(settings, CallKind.tts, model, characters=characters)

    response = await call_with_retries(
        db,
        settings.daemon,
        job_id,
        PaidCall(CallKind.tts, model, send, settle, uncertain),
        timeout_s=settings.mistral.http_timeout_s,
    )
    try:
        audio = base64.b64decode(response.audio_data, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError("the speech answer's audio_data is not valid base64") from None
    if not audio:
        raise ProviderError("the speech answer holds no audio", retryable=True)
    return SpeechAudio(audio, response_format, voice.label, model, characters)
