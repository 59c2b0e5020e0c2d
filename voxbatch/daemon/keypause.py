"""The key pause: a refused API key stops every claim until the key changes or works again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from voxbatch.config import Settings
from voxbatch.errors import AuthError, StoreError, VoxbatchError, one_line
from voxbatch.logs import REDACTOR
from voxbatch.stages.pipeline import Pipeline
from voxbatch.store import jobs
from voxbatch.store.db import Database

log = logging.getLogger(__name__)


@dataclass
class _AuthPause:
    key: str
    message: str
    last_probe: float = field(default_factory=time.monotonic)


class KeyPause:
    """Holds the key in use and, once the API refused it, the pause and its probes.

    `api_key` is the key read at start (the caller reads it: no I/O here); `wake` is called
    when the pause ends.
    """

    def __init__(
        self,
        settings: Settings,
        db: Database,
        pipeline: Pipeline,
        *,
        api_key: str,
        wake: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.db = db
        self.pipeline = pipeline
        self.api_key = api_key
        self._wake = wake
        self.auth_pause: _AuthPause | None = None

    @property
    def paused(self) -> bool:
        return self.auth_pause is not None

    def pause_for_key(self, exc: AuthError) -> None:
        if self.auth_pause is None:
            self.auth_pause = _AuthPause(self.api_key, one_line(exc))
            log.error(
                "the queue is paused: %s. Fix the key (MISTRAL_API_KEY, mistral.api_key_file or "
                "the systemd credential); voxbatch resumes by itself when the key changes or "
                "the API accepts it again. `voxbatch doctor` checks it.",
                one_line(exc),
            )

    def auth_pause_message(self) -> str:
        if self.auth_pause is None:
            return ""
        return f"the queue is paused: {self.auth_pause.message}; fix the key"

    async def check_key(self) -> None:
        pause = self.auth_pause
        if pause is None:
            return
        try:  # a file read (api_key_file, the systemd credential): off the event loop
            key = await asyncio.to_thread(self.settings.api_key)
        except VoxbatchError:
            return
        probe_due = time.monotonic() - pause.last_probe >= self.settings.daemon.breaker_probe_s * 2
        if key == pause.key and not probe_due:
            return
        pause.last_probe = time.monotonic()
        self.pipeline.reset_client()
        try:
            await self.pipeline.transcriber.handshake(self.settings.mistral.transcription_model)
        except AuthError:
            pause.key = key
            return
        except VoxbatchError as exc:
            log.info("key check: %s", one_line(exc))
            return
        REDACTOR.add_secret(key)
        self.api_key = key
        self.auth_pause = None
        log.info("the API key is accepted again: the queue resumes")
        with contextlib.suppress(StoreError):
            await self.db.write_async(
                lambda session: jobs.add_event(session, "resumed", "the API key is accepted again")
            )
        self._wake()
