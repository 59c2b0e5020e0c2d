"""Which connection, session or request gets a fault: the emulator's counters."""

from __future__ import annotations

from dataclasses import dataclass, field

from voxbatch.emulator.config import EmulatorConfig


@dataclass(frozen=True)
class Refusal:
    """An HTTP answer instead of a websocket upgrade (or instead of an HTTP response)."""

    status: int
    reason: str
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


@dataclass
class FaultCounters:
    """Counts connections, sessions and requests so that faults hit only the first N of them."""

    config: EmulatorConfig
    connections: int = 0
    sessions_started: int = 0
    active_sessions: int = 0
    http_requests: dict[str, int] = field(default_factory=dict)
    http_delayed: dict[str, int] = field(default_factory=dict)

    def admit_connection(self) -> Refusal | None:
        """Called for every authorised upgrade; None means accept."""
        self.connections += 1
        if self.connections <= self.config.refuse_first:
            return Refusal(503, "refuse_first", retry_after=self.config.retry_after)
        if self.config.max_sessions and self.active_sessions >= self.config.max_sessions:
            return Refusal(429, "max_sessions", retry_after=self.config.retry_after)
        return None

    def start_session(self) -> tuple[int, bool]:
        """Register an accepted session: its index and whether session faults apply to it."""
        index = self.sessions_started
        self.sessions_started += 1
        self.active_sessions += 1
        limit = self.config.fault_sessions
        return index, self.config.has_session_faults and (limit == 0 or index < limit)

    def end_session(self) -> None:
        self.active_sessions -= 1

    def http_failure(self, endpoint: str) -> Refusal | None:
        """The configured failure for this request to `endpoint` ("chat" or "speech"), if any."""
        count = self.http_requests.get(endpoint, 0) + 1
        self.http_requests[endpoint] = count
        if endpoint in self.config.http_fail_endpoints and count <= self.config.http_fail_first:
            return Refusal(
                self.config.http_fail_status, "http_fail_first", retry_after=self.config.retry_after
            )
        return None

    def http_delay(self, endpoint: str) -> float:
        """Seconds to wait before answering this request to `endpoint` (0 = at once)."""
        count = self.http_delayed.get(endpoint, 0) + 1
        self.http_delayed[endpoint] = count
        if endpoint in self.config.http_delay_endpoints and count <= self.config.http_delay_first:
            return self.config.http_delay_s
        return 0.0
