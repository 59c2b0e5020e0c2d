"""`voxbatch demo` from a normal (non-editable) install, run away from the checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, **kwargs
    )  # type: ignore[call-overload]


@pytest.mark.media
@pytest.mark.timeout(600)
def test_demo_works_from_an_installed_wheel(tmp_path: Path) -> None:
    # Built from a copy: setuptools leaves a build/ folder behind in the tree it builds.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "voxbatch", source / "voxbatch", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = tmp_path / "wheels"
    built = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source,
        timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("voxbatch-*.whl")

    # A fresh venv holding only the wheel; its dependencies come from this venv's
    # site-packages, added as a plain path (so the checkout's editable finder is not loaded).
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(purelib.stdout.strip()) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel,
        timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run(python, "-c", "import voxbatch; print(voxbatch.__file__)", cwd=elsewhere)
    assert where.stdout.startswith(str(env_dir)), where
    env = {k: v for k, v in os.environ.items() if k != "VOXBATCH_HOME"}
    demo = _run(env_dir / "bin" / "voxbatch", "demo", cwd=elsewhere, env=env, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "Transcript of" in demo.stdout
    assert len(re.findall(r"\bdone\b", demo.stdout)) == 5, demo.stdout  # every bundled clip
    # The temporary home is gone at exit: its path is not printed as if it could be visited.
    assert "voxbatch-demo-" not in demo.stderr, demo.stderr
    assert list(elsewhere.iterdir()) == []
