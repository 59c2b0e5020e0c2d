"""The shipped unit passes `systemd-analyze verify` and keeps the rules of reliability.md §6."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voxbatch.config import DaemonSettings

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "voxbatch.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None and os.environ.get("CI") != "true",
    reason="systemd-analyze is not installed (apt install systemd); CI requires it",
)


def installed_unit(tmp_path: Path) -> Path:
    """The unit as an admin installs it: ExecStart pointing at a real voxbatch."""
    voxbatch = Path(sys.executable).parent / "voxbatch"
    unit = tmp_path / "voxbatch.service"
    unit.write_text(UNIT.read_text().replace("/opt/voxbatch/bin/voxbatch", str(voxbatch)))
    return unit


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    assert ANALYZE is not None, "CI=true: install systemd to get systemd-analyze"
    result = subprocess.run(
        [ANALYZE, "verify", str(installed_unit(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_analyze
def test_systemd_security_rates_ok(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(installed_unit(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    level = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout)
    assert level, result.stdout[-500:] + result.stderr
    assert float(level.group(1)) <= 3.0 and level.group(2) in ("OK", "SAFE"), level.group(0)


def test_unit_follows_the_rules() -> None:
    unit = settings()
    assert unit["Type"] == ["notify"]
    assert unit["LoadCredential"] == ["mistral_api_key:/etc/voxbatch/mistral_api_key"]
    assert "Environment" not in unit  # never the key in the environment
    assert unit["KillMode"] == ["mixed"]
    drain = DaemonSettings().drain_seconds
    assert float(unit["TimeoutStopSec"][0]) > drain
    assert 2 <= float(unit["WatchdogSec"][0]) < drain  # pinged every half period
    assert unit["UMask"] == ["0077"] and unit["StateDirectoryMode"] == ["0700"]
    assert unit["StateDirectory"] == ["voxbatch"]
    for limit in ("MemoryMax", "TasksMax"):
        assert unit[limit][0] not in ("", "infinity"), limit
    assert unit["ProtectSystem"] == ["strict"] and unit["NoNewPrivileges"] == ["yes"]


def test_a_config_error_is_not_restarted_for_ever() -> None:
    """Exit 2 (usage/config) and 3 (cannot start) will fail the same way 5 s later."""
    unit = settings()
    assert unit["Restart"] == ["on-failure"]
    prevented = " ".join(unit.get("RestartPreventExitStatus", [])).split()
    assert {"2", "3"} <= set(prevented), prevented


def test_every_file_the_shipped_files_point_at_exists() -> None:
    """Comments like "see systemd/README.md" or "README.md#section" must lead somewhere."""
    root = UNIT.parents[1]
    readme = (root / "README.md").read_text()
    anchors = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in readme.splitlines()
        if line.startswith("#")
    }
    pointers = 0
    for shipped in sorted((root / "systemd").iterdir()):
        for ref in re.findall(r"\b((?:systemd/)?[\w.-]+\.md)(#[\w-]+)?", shipped.read_text()):
            name, anchor = ref
            pointers += 1
            assert (root / name).is_file(), f"{shipped.name} points at {name}, which is missing"
            if anchor and name == "README.md":
                assert anchor[1:] in anchors, f"{shipped.name}: no section {anchor} in README.md"
    assert pointers, "the unit should say where its install steps are"
