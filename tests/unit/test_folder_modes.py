"""Folder and file modes: private by default, group sharing for a drop folder when asked.

Under systemd the daemon's umask is 0077 (UMask= in the unit), and a desktop's is 0022: the
modes must come out the same under both, so voxbatch sets them itself instead of trusting it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.documents import doc
from voxbatch.config import InboxProfile, Settings, load_settings
from voxbatch.errors import ConfigError
from voxbatch.ingest.folders import prepare, write_note
from voxbatch.stages.publish import write_outputs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o077, 0o022], ids=["umask077", "umask022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_private_is_the_default(tmp_path: Path, umask: int) -> None:
    settings = Settings(home=tmp_path / "home")
    prepare(settings)
    for folder in ("", "inbox", "inbox/.incoming", "outbox", "done", "failed", "work"):
        assert mode(settings.home / folder) == 0o700, folder
    written = write_outputs(doc(), settings.folder("outbox") / "sub", ["txt", "json"])
    assert mode(settings.folder("outbox") / "sub") == 0o700
    assert {mode(p) for p in written} == {0o600}
    note = settings.folder("failed") / "a.wav.error.txt"
    write_note(note, "why")
    assert mode(note) == 0o600


def shared_settings(home: Path) -> Settings:
    return Settings(
        home=home,
        inbox=(
            InboxProfile(),  # private: home/inbox, home/outbox
            InboxProfile(path=Path("drop"), outbox=Path("drop-results"), shared=True),
        ),
    )


def test_a_shared_inbox_is_group_writable_and_its_results_group_readable(
    tmp_path: Path, umask: int
) -> None:
    settings = shared_settings(tmp_path / "home")
    prepare(settings)
    home = settings.home
    # The group may pass through the home to the shared folders, not list it.
    assert mode(home) == 0o710
    # setgid: what a producer drops belongs to the daemon's group, whoever dropped it.
    assert mode(home / "drop") == 0o2770 and mode(home / "drop" / ".incoming") == 0o2770
    # Only the daemon writes here, with its own group: no setgid (the unit forbids setting one).
    assert mode(home / "drop-results") == 0o750
    assert mode(home / "failed") == 0o750  # producers read why their file failed
    for private in ("inbox", "inbox/.incoming", "outbox", "done", "work", "quarantine"):
        assert mode(home / private) == 0o700, private
    out = settings.outbox_dir(settings.inbox[1])
    written = write_outputs(doc(), out / "team", ["txt", "srt"], shared=True)
    assert mode(out / "team") == 0o750
    assert {mode(p) for p in written} == {0o640}
    note = settings.folder("failed") / "a.wav.error.txt"
    write_note(note, "why", shared=True)
    assert mode(note) == 0o640


def test_sharing_opens_existing_folders_and_never_loosens_private_ones(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare(Settings(home=home, inbox=(InboxProfile(path=Path("drop")),)))
    (home / "outbox").chmod(0o750)  # an admin's own choice for a private folder stays
    prepare(shared_settings(home))
    assert mode(home / "drop") == 0o2770 and mode(home / "outbox") == 0o750


def test_an_inbox_has_its_own_outbox_when_configured(tmp_path: Path) -> None:
    config = tmp_path / "v.toml"
    config.write_text(
        '[[inbox]]\npath = "inbox"\n\n'
        '[[inbox]]\npath = "/srv/drop"\noutbox = "/srv/drop-results"\nshared = true\n'
    )
    settings = load_settings(config_file=config, environ={"VOXBATCH_HOME": str(tmp_path)})
    first, second = settings.inbox
    assert settings.outbox_dir(first) == tmp_path / "outbox" and not first.shared
    assert settings.outbox_dir(second) == Path("/srv/drop-results") and second.shared


@pytest.mark.parametrize(
    ("inboxes", "words"),
    [
        (
            '[[inbox]]\npath = "inbox"\n\n[[inbox]]\npath = "drop"\nshared = true\n',
            "both the shared inbox",
        ),
        ('[[inbox]]\npath = "drop"\noutbox = "drop/results"\n', "inside the inbox"),
    ],
    ids=["shared-and-private-outbox", "outbox-in-inbox"],
)
def test_an_outbox_that_would_leak_or_loop_is_refused(
    tmp_path: Path, inboxes: str, words: str
) -> None:
    config = tmp_path / "v.toml"
    config.write_text(inboxes)
    with pytest.raises(ConfigError) as caught:
        settings = load_settings(config_file=config, environ={"VOXBATCH_HOME": str(tmp_path)})
        prepare(settings)
    assert words in str(caught.value)
