"""The running emulator's shared state, reached by every handler through the aiohttp app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from voxbatch.emulator.config import EmulatorConfig
from voxbatch.emulator.faults import FaultCounters
from voxbatch.emulator.records import EmulatorRecords


@dataclass
class EmulatorState:
    config: EmulatorConfig
    records: EmulatorRecords = field(default_factory=EmulatorRecords)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    websockets: set[web.WebSocketResponse] = field(default_factory=set)
    faults: FaultCounters = field(init=False)

    def __post_init__(self) -> None:
        self.faults = FaultCounters(self.config)


STATE_KEY = web.AppKey("voxbatch_emulator_state", EmulatorState)
