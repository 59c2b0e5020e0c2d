"""An inbox made again under a running daemon gets its `.incoming` as start-up makes it: a
shared inbox's stays open to the group (2770), a private one's is the daemon's alone."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from voxbatch.ingest.watch import Supervisor


@pytest.mark.parametrize(("shared", "mode"), [(True, 0o2770), (False, 0o700)])
def test_a_recreated_inbox_gets_its_incoming_with_the_inboxs_mode(
    tmp_path: Path, shared: bool, mode: int
) -> None:
    inbox = tmp_path / "drop"
    inbox.mkdir()
    rescans: list[bool] = []
    supervisor = Supervisor(
        [inbox],
        polling=True,
        hint=lambda _path: None,
        rescan=lambda: rescans.append(True),
        shared=frozenset({inbox}) if shared else frozenset(),
    )
    assert supervisor._changed({inbox: None})  # it was gone when the watch was armed
    assert stat.S_IMODE((inbox / ".incoming").stat().st_mode) == mode
    assert rescans == [True]
