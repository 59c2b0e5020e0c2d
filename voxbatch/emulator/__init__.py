"""A local server that speaks the Mistral protocols voxbatch uses, with switchable faults."""

from voxbatch.emulator.config import EmulatorConfig
from voxbatch.emulator.recognizer import Recognition, Segment, Token, recognize
from voxbatch.emulator.records import EmulatorRecords, SessionRecord
from voxbatch.emulator.server import Emulator, running_emulator

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EmulatorRecords",
    "Recognition",
    "Segment",
    "SessionRecord",
    "Token",
    "recognize",
    "running_emulator",
]
