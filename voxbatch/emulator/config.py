"""Settings and fault switches of the emulator (also its CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves. Every fault is off by default.

    Realtime faults marked "session fault" apply to the first `fault_sessions` accepted sessions
    only (0 = every session), so that a client's retry can succeed.
    """

    # Audio is digested at `speed` x real time; 0 digests instantly.
    speed: float = 0.0
    # None accepts any non-empty key; otherwise only this key (others get 401).
    api_key: str | None = None
    # A session with no audio and no end for this long gets error 3804 and is closed.
    idle_timeout_s: float = 30.0
    # Concurrent realtime sessions beyond this are refused with 429 at the upgrade (0 = no limit).
    max_sessions: int = 0
    # The first N realtime connections are refused with 503 and Retry-After.
    refuse_first: int = 0
    retry_after: int = 1
    # Session faults, triggered by seconds of audio received (None = off).
    drop_after_s: float | None = None
    error_after_s: float | None = None
    stall_after_s: float | None = None
    close_without_done: bool = False
    no_session_created: bool = False
    fault_sessions: int = 0
    # HTTP faults: the first N requests to each endpoint named here fail with this status.
    http_fail_first: int = 0
    http_fail_status: int = 503
    http_fail_endpoints: tuple[str, ...] = ("chat", "speech")
    # HTTP stalls: the first N requests to each endpoint named here are answered only after
    # this many seconds (a slow or stuck server after the request arrived).
    http_delay_first: int = 0
    http_delay_s: float = 0.0
    http_delay_endpoints: tuple[str, ...] = ("chat", "speech")
    # What a real server may do within the protocol, to exercise clients:
    # the language reported when the session gives no hint (None: `language: null`);
    detected_language: str | None = "en"
    # whether `transcription.done` repeats the segments (it is optional);
    segments_in_done: bool = True
    # the billed seconds reported in usage (None: ceil of the audio received);
    usage_seconds: int | None = None
    # a `transcription.done` that fails the SDK's validation (a float usage), for every session.
    malformed_done: bool = False
    # Chat prompts estimated above this many tokens are refused with 400.
    max_context_tokens: int = 32_000
    # Spoken summaries are tone patterns this long per input character, capped.
    speech_ms_per_char: int = 50
    speech_max_s: float = 120.0

    @property
    def has_session_faults(self) -> bool:
        return (
            self.drop_after_s is not None
            or self.error_after_s is not None
            or self.stall_after_s is not None
            or self.close_without_done
            or self.no_session_created
        )
