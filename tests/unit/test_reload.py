"""What a SIGHUP takes on live and what waits for a restart (voxbatch.daemon.reload)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from voxbatch.config import Settings
from voxbatch.daemon.reload import check_reloadable, live_settings
from voxbatch.errors import ConfigError


def settings(home: Path, **data: object) -> Settings:
    return Settings.model_validate({"home": str(home), **data})


def test_inboxes_caps_and_live_keys_change_the_rest_is_kept(tmp_path: Path) -> None:
    old = settings(tmp_path, daemon={"stable_seconds": 5, "concurrency": 4})
    new = settings(
        tmp_path / "elsewhere",
        daemon={"stable_seconds": 1, "concurrency": 2},
        budget={"daily_usd": "3"},
        mistral={"connect_timeout_s": 7},
        inbox=[{"path": "inbox", "language": "fr"}, {"path": "second"}],
    )
    reloaded = live_settings(old, new)
    got = reloaded.settings
    assert got.daemon.concurrency == 2 and got.daemon.stable_seconds == 5
    assert got.budget.daily_usd == Decimal(3)
    assert [str(p.path) for p in got.inbox] == ["inbox", "second"]
    assert got.inbox[0].language == "fr"
    assert got.home == tmp_path and got.mistral.connect_timeout_s == 20
    assert sorted(reloaded.kept) == ["daemon.stable_seconds", "home", "mistral.connect_timeout_s"]
    assert sorted(reloaded.changed) == [
        "budget.daily_usd",
        "daemon.concurrency",
        "inbox inbox profile",
        "inbox second added",
    ]


def test_nothing_changed_reports_nothing(tmp_path: Path) -> None:
    reloaded = live_settings(settings(tmp_path), settings(tmp_path))
    assert reloaded.changed == [] and reloaded.kept == []


def test_overlapping_inboxes_are_refused_on_reload(tmp_path: Path) -> None:
    bad = settings(tmp_path, inbox=[{"path": "inbox"}, {"path": "inbox/inner"}])
    with pytest.raises(ConfigError, match="lies inside the inbox"):
        check_reloadable(bad)
    ok = settings(tmp_path, inbox=[{"path": "inbox"}, {"path": "second"}])
    assert [b.name for b in check_reloadable(ok)] == ["inbox", "second"]
    assert (tmp_path / "second" / ".incoming").is_dir()
