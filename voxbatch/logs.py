"""Logging for a terminal or for journald, with the API key redacted from every record."""

from __future__ import annotations

import logging
import os
import re
import sys

# These log request headers (the API key) at DEBUG: never let them.
NOISY_LOGGERS = ("websockets", "httpx", "httpx2", "httpcore", "aiohttp.access", "watchfiles")
_BEARER = re.compile(r"(?i)(bearer\s+|api[_-]?key[=:]\s*)[^\s'\",]+")

_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


# Characters that end a line or drive a terminal: a file name carrying them could forge log
# lines or recolour the screen. Tab is left alone: it breaks nothing.
_NAMED = {"\n": "\\n", "\r": "\\r"}
_CONTROLS = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
    for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)
    if code != 0x09
}


def escape_controls(text: str) -> str:
    """`text` on one line: line breaks and other control characters shown as escapes."""
    return text.translate(_CONTROLS)


class RedactingFilter(logging.Filter):
    """Makes every record safe to write: the key (and any bearer token) replaced, and control
    characters escaped so that one record is one line (tracebacks keep their lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add_secret(self, secret: str) -> None:
        if len(secret) >= 4:
            self.secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _BEARER.sub(r"\1***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = escape_controls(self.redact(message))
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_text is None and record.exc_info[0] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


class _JournalFormatter(logging.Formatter):
    """`<6>name: message`: journald reads the priority and adds its own timestamps."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now (test runners swap it)."""

    _voxbatch = True

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


REDACTOR = RedactingFilter()


def configure_logging(level: str, *, secret: str | None = None) -> None:
    """Once per process; journald format when stderr is the journal ($JOURNAL_STREAM)."""
    if secret:
        REDACTOR.add_secret(secret)
    root = logging.getLogger()
    if not any(getattr(h, "_voxbatch", False) for h in root.handlers):
        handler = _StderrHandler()
        if os.environ.get("JOURNAL_STREAM"):
            handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
        else:
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
        handler.addFilter(REDACTOR)
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
