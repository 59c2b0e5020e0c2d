"""What a user sees when the work fails: where to look, and why a job failed."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import Cli


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.media
def test_a_refused_connection_says_to_check_the_base_url_and_export_says_why(
    samples: list[Path],
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    cli = Cli(
        {
            "MISTRAL_BASE_URL": url,
            "MISTRAL_API_KEY": "test-key-0123456789",
            "VOXBATCH_DAEMON__RETRY_INITIAL_S": "0.01",
            "VOXBATCH_DAEMON__RETRY_ATTEMPTS": "2",
        }
    )
    processed = cli("process", str(samples[0]), "--json", ok=False)
    assert processed.exit_code == 1
    [row] = json.loads(processed.stdout)
    assert row["state"] == "failed"
    assert "MISTRAL_BASE_URL" in row["error"] and url in row["error"], row["error"]

    result = cli("export", str(row["job_id"]), ok=False)
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert f"job {row['job_id']} failed" in first and "MISTRAL_BASE_URL" in first, first
    assert f"voxbatch retry {row['job_id']}" in result.stderr
