"""The settings' shape: every key, its default and its bounds (pydantic models).

Loading them (file < environment < flags) is the package's own business (`voxbatch.config`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voxbatch.errors import MissingKeyError

DEFAULT_BASE_URL = "https://api.mistral.ai"
OutputFormat = Literal["txt", "srt", "vtt", "tsv", "json"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("txt", "srt", "vtt", "tsv", "json")
# What an inbox writes unless told otherwise (tsv is there for whisper tools: ask for it).
DEFAULT_OUTPUTS: tuple[OutputFormat, ...] = ("txt", "srt", "vtt", "json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MistralSettings(_Strict):
    base_url: str = DEFAULT_BASE_URL
    api_key_file: Path | None = None
    transcription_model: str = "voxtral-mini-transcribe-realtime-2602"
    target_streaming_delay_ms: int = Field(default=480, ge=80, le=2400)
    chat_model: str = "mistral-small-latest"
    tts_model: str = "voxtral-mini-tts-2603"
    connect_timeout_s: float = Field(default=20.0, gt=0)
    # No event and no send progress for this long means the server is stuck.
    idle_timeout_s: float = Field(default=60.0, gt=0)
    # Chat and speech requests: the whole HTTP exchange may take this long.
    http_timeout_s: float = Field(default=120.0, gt=0)
    # The chat model's context window. Transcripts that do not fit are summarised in parts
    # (map-reduce); 32k is conservative for mistral-small (128k) and keeps each call modest.
    chat_context_tokens: int = Field(default=32_000, ge=1_000)
    # Characters per token assumed when cutting transcripts into parts (3 is conservative:
    # most languages average 3.5-4.5 with Mistral's tokenizer).
    chat_chars_per_token: float = Field(default=3.0, gt=0.5, le=10)
    # Most tokens the chat model may answer with, per part and for the combined summary.
    summary_max_tokens: int = Field(default=1_024, ge=16)
    # permessage-deflate on the realtime websocket: base64 PCM shrinks by about a quarter for
    # several times the CPU of the whole send path. Off unless bandwidth is scarce.
    websocket_compression: bool = False

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


DEFAULT_EXTENSIONS: tuple[str, ...] = (
    *("mp3", "wav", "m4a", "aac", "flac", "ogg", "oga", "opus", "wma", "amr", "aif", "aiff"),
    *("mka", "webm", "mp4", "m4v", "mkv", "mov", "avi", "mpg", "mpeg", "ts", "3gp", "wmv"),
)


class DaemonSettings(_Strict):
    concurrency: int = Field(default=4, ge=1, le=64)
    pace: float = Field(default=0.0, ge=0)
    stable_seconds: float = Field(default=5.0, ge=0)
    rescan_seconds: float = Field(default=60.0, gt=0)
    watch_mode: Literal["auto", "inotify", "poll"] = "auto"
    drain_seconds: float = Field(default=120.0, ge=0)
    # Attempts within one run, with exponential backoff and full jitter between them.
    retry_attempts: int = Field(default=4, ge=1, le=20)
    retry_initial_s: float = Field(default=1.0, ge=0)
    retry_max_s: float = Field(default=60.0, ge=0)
    lease_seconds: float = Field(default=60.0, ge=5)
    # When the in-process attempts run out, the job waits in the queue this long (x4 each
    # time, at most an hour) and tries again, up to `max_requeues` times, then fails.
    requeue_delay_s: float = Field(default=300.0, ge=0)
    max_requeues: int = Field(default=3, ge=0, le=50)
    # After a crash, a paid stage whose result is unknown is bought again automatically only
    # when that costs at most this much; dearer ones wait in `needs_review` for an operator.
    review_above_usd: Decimal = Field(default=Decimal("0.50"), ge=0)
    # This many provider failures in a row open the circuit: no new claims, probes only.
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_probe_s: float = Field(default=30.0, gt=0)
    # Only these extensions are taken from an inbox (lower case, no dot).
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS

    @field_validator("extensions", mode="before")
    @classmethod
    def _exts(cls, v: Any) -> Any:
        items = _split_list(v)
        if isinstance(items, list | tuple):
            return tuple(str(e).lower().lstrip(".") for e in items)
        return items


class InboxProfile(_Strict):
    path: Path = Path("inbox")
    # Where this inbox's results go (relative to home); default: the home's outbox/.
    outbox: Path | None = None
    # A drop folder for a group of producers (the daemon's group): the inbox is group-writable
    # with setgid, its outbox and the failure notes of its files group-readable. Private
    # (0700 folders, 0600 files) unless asked.
    shared: bool = False
    language: str | None = None
    context_bias: tuple[str, ...] = ()
    diarize: bool = False
    outputs: tuple[OutputFormat, ...] = DEFAULT_OUTPUTS
    # Subtitle cues (srt, vtt): at most this many characters a line, lines a cue, seconds a cue.
    subtitle_line_chars: int = Field(default=42, ge=10, le=200)
    subtitle_lines: int = Field(default=2, ge=1, le=5)
    subtitle_cue_seconds: float = Field(default=7.0, ge=1, le=60)
    recursive: bool = True
    # Long files in parallel parts ([parts]); false streams every file in one session.
    parts: bool = True
    summary: bool = False
    summary_prompt: str = "Summarise this transcript in five sentences."
    voice_id: str = ""
    ref_audio: Path | None = None
    speech_format: Literal["mp3", "wav", "flac", "opus", "pcm"] = "mp3"
    # Spend caps for this inbox's jobs alone (USD, UTC day/month; 0 = no cap).
    budget_daily_usd: Decimal = Field(default=Decimal(0), ge=0)
    budget_monthly_usd: Decimal = Field(default=Decimal(0), ge=0)

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not (len(v) == 2 and v.isalpha()):
            raise ValueError("must be an ISO 639-1 code such as 'en' or 'fr'")
        return v.lower()

    @field_validator("context_bias", "outputs", mode="before")
    @classmethod
    def _csv(cls, v: Any) -> Any:
        return _split_list(v)

    @model_validator(mode="after")
    def _one_voice(self) -> InboxProfile:
        if self.voice_id and self.ref_audio is not None:
            raise ValueError("give voice_id or ref_audio, not both")
        return self


class PartSettings(_Strict):
    """A file longer than `min_seconds` is cut at silences into parts streamed in parallel
    sessions (SPEC: max(ceil(d / max), min(sessions free, floor(d / min))) parts of about
    equal length); no part is longer than `max_seconds` nor the model's session window."""

    min_seconds: float = Field(default=600.0, ge=5)
    max_seconds: float = Field(default=1800.0, ge=5)
    # A cut goes in the middle of the longest silence (quieter than `silence_db` for at least
    # `silence_seconds`) near its ideal place; none there: it is cut at the ideal place.
    silence_db: float = Field(default=-35.0, le=0)
    silence_seconds: float = Field(default=0.4, gt=0, le=10)
    # A part's session sends at most this far past the last segment it heard: what a session
    # cut short (a kill, a drop) sent but had not heard back is bought again. 0: no limit.
    ahead_seconds: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _order(self) -> PartSettings:
        if self.min_seconds > self.max_seconds:
            raise ValueError("min_seconds must not exceed max_seconds")
        return self


class BudgetSettings(_Strict):
    daily_usd: Decimal = Field(default=Decimal(0), ge=0)
    monthly_usd: Decimal = Field(default=Decimal(0), ge=0)


class ModelPrice(_Strict):
    per_audio_minute: Decimal | None = Field(default=None, ge=0)
    per_million_chars: Decimal | None = Field(default=None, ge=0)
    per_million_input_tokens: Decimal | None = Field(default=None, ge=0)
    per_million_output_tokens: Decimal | None = Field(default=None, ge=0)
    # Realtime models: the most audio one session may take (its context window).
    session_window_seconds: float | None = Field(default=None, gt=0)


class PriceTable(_Strict):
    """Dated USD prices; each cost row records which entry it used."""

    effective: date = date(2026, 8, 11)
    models: dict[str, ModelPrice] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        # The TOML form is flat: `effective = ...` beside one inline table per model.
        if isinstance(data, Mapping) and "models" not in data:
            data = dict(data)
            effective = data.pop("effective", date(2026, 8, 11))
            return {"effective": effective, "models": data}
        return data


DEFAULT_PRICES: dict[str, Any] = {
    "effective": "2026-08-11",
    "voxtral-mini-transcribe-realtime-2602": {"per_audio_minute": "0.006"},
    "voxtral-mini-transcribe-realtime-latest": {"per_audio_minute": "0.006"},
    "voxtral-mini-2602": {"per_audio_minute": "0.003"},
    "voxtral-mini-tts-2603": {"per_million_chars": "16.0"},
    "voxtral-mini-tts-latest": {"per_million_chars": "16.0"},
    "mistral-small-latest": {
        "per_million_input_tokens": "0.15",
        "per_million_output_tokens": "0.60",
    },
    "mistral-small-2603": {"per_million_input_tokens": "0.15", "per_million_output_tokens": "0.60"},
    "mistral-small-2506": {"per_million_input_tokens": "0.10", "per_million_output_tokens": "0.30"},
}


class Settings(_Strict):
    home: Path
    database: Path | None = None
    ffmpeg: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    mistral: MistralSettings = MistralSettings()
    daemon: DaemonSettings = DaemonSettings()
    inbox: tuple[InboxProfile, ...] = (InboxProfile(),)
    budget: BudgetSettings = BudgetSettings()
    parts: PartSettings = PartSettings()
    prices: PriceTable = PriceTable.model_validate(DEFAULT_PRICES)
    # Where the settings came from, for `config show` and error messages.
    config_file: Path | None = None

    @property
    def db_path(self) -> Path:
        return self.database if self.database is not None else self.home / "voxbatch.db"

    def folder(self, name: str) -> Path:
        """outbox, done, failed, quarantine, work: fixed names under home."""
        return self.home / name

    def inbox_dir(self, profile: InboxProfile) -> Path:
        return profile.path if profile.path.is_absolute() else self.home / profile.path

    def outbox_dir(self, profile: InboxProfile) -> Path:
        """The inbox's own outbox, else the home's."""
        if profile.outbox is None:
            return self.folder("outbox")
        return profile.outbox if profile.outbox.is_absolute() else self.home / profile.outbox

    def api_key(self, environ: Mapping[str, str] | None = None) -> str:
        """The Mistral key: MISTRAL_API_KEY, else api_key_file, else the systemd credential."""
        env = os.environ if environ is None else environ
        key = env.get("MISTRAL_API_KEY", "").strip()
        if key:
            return _checked_key(key, "MISTRAL_API_KEY")
        candidates: list[Path] = []
        if self.mistral.api_key_file is not None:
            candidates.append(self.mistral.api_key_file)
        if env.get("CREDENTIALS_DIRECTORY"):
            candidates.append(Path(env["CREDENTIALS_DIRECTORY"]) / "mistral_api_key")
        for path in candidates:
            try:
                key = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise MissingKeyError(
                    f"cannot read the API key file {path}: {exc.strerror}",
                    hint="check the path and that the voxbatch user may read it",
                ) from exc
            if key:
                return _checked_key(key, str(path))
        raise MissingKeyError(
            "no Mistral API key: set MISTRAL_API_KEY, mistral.api_key_file, "
            "or a systemd credential named mistral_api_key",
            hint="to try voxbatch without a key run `voxbatch demo`",
        )


def _checked_key(key: str, source: str) -> str:
    """A key goes into an HTTP header: anything but visible ASCII is a mistake (never echoed)."""
    if not all(33 <= ord(ch) < 127 for ch in key):
        raise MissingKeyError(
            f"the API key from {source} contains spaces, line breaks or non-ASCII characters",
            hint="the key file must hold the key alone, on one line",
        )
    return key


def _split_list(v: Any) -> Any:
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return v
