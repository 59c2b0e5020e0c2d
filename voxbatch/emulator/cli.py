"""`voxbatch emulator`: run the local Mistral-compatible server until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import click

from voxbatch.emulator.config import EmulatorConfig
from voxbatch.emulator.server import Emulator

EXIT_CANNOT_START = 3


async def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Listen until SIGINT/SIGTERM, then close sessions and stop."""
    emulator = Emulator(config)
    await emulator.start(host, port)
    click.echo(f"voxbatch emulator listening on {emulator.base_url}", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await emulator.stop()
    click.echo("voxbatch emulator stopped", err=True)


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0 = any free).",
)
@click.option(
    "--speed", default=0.0, type=float, help="Digest audio at N x real time (0 = instant)."
)
@click.option("--api-key", default=None, help="Accept only this key (default: any non-empty key).")
@click.option(
    "--idle-timeout", default=30.0, type=float, help="Seconds without audio before error 3804."
)
@click.option(
    "--max-sessions", default=0, type=int, help="Concurrent sessions beyond this get 429."
)
@click.option(
    "--refuse-first", default=0, type=int, help="Refuse the first N connections with 503."
)
@click.option("--retry-after", default=1, type=int, help="Retry-After seconds on 503/429 answers.")
@click.option("--drop-after", type=float, help="Close with 1011 after N seconds of audio.")
@click.option("--error-after", type=float, help="Send an error event after N seconds of audio.")
@click.option(
    "--stall-after", type=float, help="Stop reading and sending after N seconds of audio."
)
@click.option("--close-without-done", is_flag=True, help="Close cleanly instead of sending done.")
@click.option("--no-session-created", is_flag=True, help="Never send session.created.")
@click.option(
    "--fault-sessions", default=0, type=int, help="Faults hit only the first K sessions (0 = all)."
)
@click.option(
    "--http-fail-first", default=0, type=int, help="Fail the first N chat/speech requests."
)
@click.option("--http-fail-status", default=503, type=int, help="Status of those failures.")
@click.option(
    "--http-fail-endpoint",
    "http_fail_endpoints",
    multiple=True,
    type=click.Choice(["chat", "speech"]),
    help="Endpoints that fail (repeatable; default both).",
)
@click.option(
    "--max-context-tokens", default=32_000, type=int, help="Chat prompts above this get 400."
)
def emulator(
    host: str,
    port: int,
    speed: float,
    api_key: str | None,
    idle_timeout: float,
    max_sessions: int,
    refuse_first: int,
    retry_after: int,
    drop_after: float | None,
    error_after: float | None,
    stall_after: float | None,
    close_without_done: bool,
    no_session_created: bool,
    fault_sessions: int,
    http_fail_first: int,
    http_fail_status: int,
    http_fail_endpoints: tuple[str, ...],
    max_context_tokens: int,
) -> None:
    """Run a local Mistral-compatible server (realtime transcription, chat, speech)."""
    config = EmulatorConfig(
        speed=speed,
        api_key=api_key or None,
        idle_timeout_s=idle_timeout,
        max_sessions=max_sessions,
        refuse_first=refuse_first,
        retry_after=retry_after,
        drop_after_s=drop_after,
        error_after_s=error_after,
        stall_after_s=stall_after,
        close_without_done=close_without_done,
        no_session_created=no_session_created,
        fault_sessions=fault_sessions,
        http_fail_first=http_fail_first,
        http_fail_status=http_fail_status,
        http_fail_endpoints=http_fail_endpoints or ("chat", "speech"),
        max_context_tokens=max_context_tokens,
    )
    try:
        asyncio.run(serve(config, host, port))
    except OSError as exc:
        click.echo(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_CANNOT_START) from exc
