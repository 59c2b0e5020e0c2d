"""A throw-away voxbatch home: its TOML configuration, key file, inbox, and what it recorded.

voxbatch is run exactly as a user would: `python -m voxbatch ...` with VOXBATCH_HOME pointing
here, settings in `$VOXBATCH_HOME/voxbatch.toml`, the key in a key file. No VOXBATCH_* or
MISTRAL_* variable of the caller's environment leaks in.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w

from benchmarks import measure

KEY = "bench-key-0123456789"


def clean_environ() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("VOXBATCH_", "MISTRAL_"))}
    return {**keep, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


class Home:
    """`Home(root, url, daemon={...}, parts={...}, inbox={...})`: the sections as TOML tables."""

    def __init__(
        self,
        root: Path,
        base_url: str,
        *,
        daemon: dict[str, Any] | None = None,
        parts: dict[str, Any] | None = None,
        inbox: dict[str, Any] | None = None,
    ) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.inbox.mkdir(parents=True, exist_ok=True)
        key_file = root / "mistral.key"
        key_file.write_text(KEY + "\n")
        key_file.chmod(0o600)
        self.config: dict[str, Any] = {
            "mistral": {"base_url": base_url, "api_key_file": str(key_file)},
            # Files are in place before the run: waiting for them to settle measures nothing.
            "daemon": {"stable_seconds": 0, **(daemon or {})},
            "inbox": [{"path": "inbox", **(inbox or {})}],
        }
        if parts:
            self.config["parts"] = parts
        (root / "voxbatch.toml").write_text(tomli_w.dumps(self.config))

    def env(self) -> dict[str, str]:
        return {**clean_environ(), "VOXBATCH_HOME": str(self.root)}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "voxbatch", *args]

    def run(self, *args: str, timeout: float, log: str = "voxbatch") -> measure.Measured:
        """`voxbatch ARGS` to its exit: wall time, peak memory, stdout (stderr in a log)."""
        return measure.run(self.command(*args), self.env(), log=self.log(log), timeout=timeout)

    def start(self, *args: str, log: str = "voxbatch") -> measure.Child:
        return measure.Child(self.command(*args), self.env(), log=self.log(log))

    def log(self, name: str) -> Path:
        """Beside the home, not in it: the home holds only what voxbatch made."""
        return self.root.parent / f"{name}.log"

    def query(self, *args: str) -> Any:
        """A voxbatch listing command's --json answer."""
        done = subprocess.run(
            self.command(*args, "--json"),
            env=self.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"voxbatch {' '.join(args)} failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout)

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.query("jobs", "--limit", "0"))

    def stt_audio_paid_s(self) -> float:
        """Audio seconds in the ledger (`voxbatch costs`), failed and estimated attempts too."""
        report = self.query("costs", "--by", "kind")
        return float(sum(r["audio_seconds"] or 0 for r in report["rows"] if r["kind"] == "stt"))

    def job_span_s(self) -> float:
        """From the first job's conversion start to the last job's end, as the database has them:
        the batch's own time, without the process start-up and the initial scan."""
        db = f"file:{self.root / 'voxbatch.db'}?mode=ro"
        with closing(sqlite3.connect(db, uri=True)) as conn:
            first, last = conn.execute(
                "SELECT MIN(started_at), MAX(finished_at) FROM job"
            ).fetchone()
        if first is None or last is None:
            raise RuntimeError("no job started and finished")
        return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
