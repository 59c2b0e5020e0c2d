"""Run the emulator: in the caller's event loop (`Emulator`) or in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from voxbatch.emulator.config import EmulatorConfig
from voxbatch.emulator.http_api import handle_chat, handle_records, handle_speech
from voxbatch.emulator.realtime import PATH as REALTIME_PATH
from voxbatch.emulator.realtime import handle_realtime
from voxbatch.emulator.records import EmulatorRecords
from voxbatch.emulator.state import STATE_KEY, EmulatorState

RECORDS_PATH = "/_emulator/records"
# Handlers still running this long after stop() (a paced or stalled session) are cancelled.
_SHUTDOWN_TIMEOUT_S = 2.0


class Emulator:
    """A local Mistral-compatible server on one port (HTTP and websocket, as the SDK expects)."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self._state = EmulatorState(self.config)
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def reconfigure(self, **changes: Any) -> None:
        """Change switches while running (say, a slow server that becomes fast); sessions
        already open keep the settings they started with."""
        self.config = dataclasses.replace(self.config, **changes)
        self._state.config = self.config
        self._state.faults.config = self.config

    @property
    def records(self) -> EmulatorRecords:
        return self._state.records

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def build_app(self) -> web.Application:
        app = web.Application()
        app[STATE_KEY] = self._state
        app.router.add_get(REALTIME_PATH, handle_realtime)
        app.router.add_post("/v1/chat/completions", handle_chat)
        app.router.add_post("/v1/audio/speech", handle_speech)
        app.router.add_get(RECORDS_PATH, handle_records)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen and return the bound port (pass port=0 for a free one)."""
        runner = web.AppRunner(
            self.build_app(), access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host = host
        self.port = runner.addresses[0][1]
        return self.port

    async def stop(self) -> None:
        """Close open sessions (1001 going away) and stop listening."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._state.stopping.set()
        closing = [
            ws.close(code=1001, message=b"emulator stopping") for ws in list(self._state.websockets)
        ]
        if closing:
            await asyncio.wait(
                [asyncio.ensure_future(c) for c in closing], timeout=_SHUTDOWN_TIMEOUT_S
            )
        await runner.cleanup()


@contextlib.contextmanager
def running_emulator(
    config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[Emulator]:
    """Run an emulator in a background thread with its own event loop, for sync code and tests."""
    emulator = Emulator(config)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(emulator.start(host, port))
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=serve, name="voxbatch-emulator", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
