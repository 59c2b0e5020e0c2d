"""What the emulator received, kept as plain objects for assertions (and served as JSON).

Keys are never stored: a session records only whether its key matched the configured one.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class SessionRecord:
    """One accepted realtime session.

    `outcome` is one of: open, done, client_closed, dropped, error, closed_without_done, stalled,
    idle_timeout, no_session_created, emulator_stopped.
    """

    index: int
    request_id: str
    model: str | None
    # None when the emulator accepts any key, else whether the key given was the configured one.
    key_matched: bool | None
    faulty: bool
    session_updates: list[dict[str, Any]] = field(default_factory=list)
    appends: int = 0
    # When each audio message arrived (the emulator's monotonic clock, seconds): gaps show a
    # client that stalled mid-stream.
    append_times: list[float] = field(default_factory=list)
    rejected_appends: int = 0
    max_chunk_bytes: int = 0
    total_bytes: int = 0
    flushes: int = 0
    end_received: bool = False
    outcome: str = "open"
    close_code: int | None = None
    events_sent: list[str] = field(default_factory=list)
    errors_sent: list[str] = field(default_factory=list)
    _pcm_hash: Any = field(default_factory=hashlib.sha256, repr=False)

    def add_audio(self, pcm: bytes) -> None:
        self.total_bytes += len(pcm)
        self._pcm_hash.update(pcm)

    @property
    def sha256(self) -> str:
        """SHA-256 of all accepted PCM, in order."""
        return self._pcm_hash.hexdigest()

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data = {k: copy.deepcopy(v) for k, v in data.items() if not k.startswith("_")}
        data["sha256"] = self.sha256
        return data


@dataclass
class RefusedConnection:
    """A realtime upgrade answered with an HTTP status instead of a websocket."""

    status: int
    reason: str


@dataclass
class HttpRequestRecord:
    """A chat or speech request: its JSON body (None if unreadable) and the status answered."""

    endpoint: str
    body: Any
    status: int = 0


@dataclass
class EmulatorRecords:
    sessions: list[SessionRecord] = field(default_factory=list)
    refused: list[RefusedConnection] = field(default_factory=list)
    chat: list[HttpRequestRecord] = field(default_factory=list)
    speech: list[HttpRequestRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sessions": [session.to_json() for session in self.sessions],
            "refused": [asdict(refusal) for refusal in self.refused],
            "chat": [asdict(request) for request in self.chat],
            "speech": [asdict(request) for request in self.speech],
        }
