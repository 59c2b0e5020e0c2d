"""One exception root for everything voxbatch raises, and the one place that decides retries."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import ClassVar


class ErrorCode(StrEnum):
    """Why a job failed, as stored in `job.error_class`: the very strings stored before this
    enum existed (exception class names and a few named outcomes), so no data migration."""

    error = "VoxbatchError"
    config = "ConfigError"
    missing_key = "MissingKeyError"
    access = "AccessError"
    no_database = "NoDatabaseError"
    database = "DatabaseError"
    store = "StoreError"
    input = "InputError"
    not_audio = "NotAudioError"
    conversion = "ConversionError"
    provider = "ProviderError"
    auth = "AuthError"
    stream_incomplete = "StreamIncompleteError"
    session_limit = "SessionLimitError"
    answer_timeout = "AnswerTimeoutError"
    job_not_found = "JobNotFoundError"
    cancelled = "CancelledError"
    interrupted = "KeyboardInterrupt"
    # Outcomes that are not exceptions.
    file_missing = "FileMissing"
    needs_review = "NeedsReview"
    vanished = "Vanished"
    inbox = "InboxError"
    abandoned = "Abandoned"
    duplicate_of_failed = "DuplicateOfFailed"
    spend_cap = "SpendCapError"
    file_changed = "FileChangedError"


# Failures that depend only on the file's bytes: a copy of the same audio fails the same way.
CONTENT_ERRORS = frozenset({ErrorCode.input, ErrorCode.not_audio, ErrorCode.conversion})


class VoxbatchError(Exception):
    """Root of every error voxbatch raises on purpose.

    `hint` says what the user can do about it; it ends up in error files and CLI output.
    """

    code: ClassVar[ErrorCode] = ErrorCode.error

    retryable: bool = False

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(VoxbatchError):
    """Invalid or missing configuration (exit code 2)."""

    code: ClassVar[ErrorCode] = ErrorCode.config


class AccessError(ConfigError):
    """A file or folder voxbatch needs at start (its config, its home, the database) is not
    readable or writable by the user it runs as: a setup problem, not a bug (exit 2; `run`
    exits 3, and systemd does not restart it)."""

    code: ClassVar[ErrorCode] = ErrorCode.access


class NoDatabaseError(ConfigError):
    """A command that only reads found no database where it looked: a wrong home, not an
    empty one (exit 2). Only `run`, `process` and `demo` create a database."""

    code: ClassVar[ErrorCode] = ErrorCode.no_database


class MissingKeyError(ConfigError):
    """No Mistral API key could be found."""

    code: ClassVar[ErrorCode] = ErrorCode.missing_key


class DatabaseError(VoxbatchError):
    """The database cannot be opened, migrated or written."""

    code: ClassVar[ErrorCode] = ErrorCode.database


class StoreFault(StrEnum):
    """Why the database refused a transaction that may work later (stored as this text)."""

    locked = "database locked"
    disk_full = "disk full"
    io_error = "I/O error"
    read_only = "read-only"


class StoreError(DatabaseError):
    """A transaction failed for a reason outside voxbatch that may clear by itself: another
    process holds the lock past the busy timeout, the disk is full, an I/O error, a
    read-only mount. Nothing of the transaction was kept; the daemon waits and retries."""

    code: ClassVar[ErrorCode] = ErrorCode.store

    retryable = True

    def __init__(self, message: str, *, fault: StoreFault, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.fault = fault


class InputError(VoxbatchError):
    """The input file itself is unusable: retrying will not help."""

    code: ClassVar[ErrorCode] = ErrorCode.input


class NotAudioError(InputError):
    """ffmpeg cannot read an audio stream from the file."""

    code: ClassVar[ErrorCode] = ErrorCode.not_audio


class ConversionError(VoxbatchError):
    """ffmpeg failed or timed out while converting a file that probed fine."""

    code: ClassVar[ErrorCode] = ErrorCode.conversion


class SpendCapError(VoxbatchError):
    """A stream ran past its job's estimate and going on would cross a spend cap: it stopped,
    and the job waits for the budget (it does not fail). Its audio is at least
    `expected_seconds` long."""

    code: ClassVar[ErrorCode] = ErrorCode.spend_cap

    def __init__(self, message: str, *, expected_seconds: float) -> None:
        super().__init__(message, hint="raise the cap, or wait for the period to turn")
        self.expected_seconds = expected_seconds


class FileChangedError(VoxbatchError):
    """The claimed original changed after its claim (an upload that paused, then went on):
    what was read of it is not the file. The job goes back to the queue for the whole file,
    now `size_bytes` long with this `sha256` (and `audio_seconds`, when it could be measured)."""

    code: ClassVar[ErrorCode] = ErrorCode.file_changed

    def __init__(
        self, message: str, *, sha256: str, size_bytes: int, audio_seconds: float | None
    ) -> None:
        super().__init__(message)
        self.sha256, self.size_bytes, self.audio_seconds = sha256, size_bytes, audio_seconds


class ProviderError(VoxbatchError):
    """A call to Mistral (or the emulator) failed.

    `status` is the HTTP status or realtime error code when known; `retry_after` is the
    server's Retry-After in seconds when it sent one.
    """

    code: ClassVar[ErrorCode] = ErrorCode.provider

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool = False,
        hint: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable


class AuthError(ProviderError):
    """The key was refused (401/403): no retry until the key changes."""

    code: ClassVar[ErrorCode] = ErrorCode.auth


class SessionLimitError(ProviderError):
    """The provider refused a new session because too many are open (429 at the upgrade).

    Nothing was sent, so nothing was billed: the job waits for a session to end and asks
    again (`stages.sessions`), spending no retry attempt; it never fails a file.
    """

    code: ClassVar[ErrorCode] = ErrorCode.session_limit


class StreamIncompleteError(ProviderError):
    """The realtime stream ended, dropped or went silent before `transcription.done`."""

    code: ClassVar[ErrorCode] = ErrorCode.stream_incomplete


class AnswerTimeoutError(ProviderError):
    """No answer in time after the request was sent: not resent at once (it may have been
    billed), but the daemon tries the job again in a later round."""

    code: ClassVar[ErrorCode] = ErrorCode.answer_timeout


class JobNotFoundError(VoxbatchError):
    """No job matches the id or hash prefix given."""

    code: ClassVar[ErrorCode] = ErrorCode.job_not_found


def one_line(error: BaseException | str | None, limit: int = 300) -> str:
    """One line a user can read: the first line of an error's message, bounded."""
    if isinstance(error, BaseException):
        text = str(error).strip() or type(error).__name__
    else:
        text = (error or "").strip() or "unknown problem"
    first = text.splitlines()[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; an HTTP date is left to the backoff (rare)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def is_retryable(exc: BaseException) -> bool:
    """The single rule for whether an attempt may be repeated."""
    if isinstance(exc, VoxbatchError):
        return exc.retryable
    return isinstance(exc, (ConnectionError, TimeoutError))


def display_path(path: Path) -> str:
    """The path as text for the database and messages; undecodable bytes shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def user_name() -> str:
    """Who voxbatch runs as, for messages about permissions."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def access_error(doing: str, path: Path, exc: OSError, *, hint: str) -> AccessError:
    """ "cannot `doing` `path` as user U: Permission denied" (exc is the PermissionError)."""
    reason = exc.strerror or "permission denied"
    return AccessError(
        f"cannot {doing} {display_path(path)} as user {user_name()}: {reason}", hint=hint
    )


HOME_HINT = (
    "run voxbatch as the user that owns it (`sudo -u voxbatch voxbatch ...` for the service), "
    "or choose another home with --home or VOXBATCH_HOME"
)


def home_error(home: Path, exc: OSError) -> AccessError:
    """The home (or a folder above it, or its database) is closed to this user."""
    return access_error("use the home", home, exc, hint=HOME_HINT)


def internal_error(exc: BaseException) -> VoxbatchError:
    """A bug's one-line face for users; the traceback goes to the log."""
    return VoxbatchError(
        f"internal error ({type(exc).__name__}: {one_line(exc, 160)}); the log has the details"
    )


def error_code(error: BaseException) -> ErrorCode:
    """The code a job that failed with `error` records."""
    if isinstance(error, VoxbatchError):
        return error.code
    if isinstance(error, KeyboardInterrupt):
        return ErrorCode.interrupted
    if type(error).__name__ == "CancelledError":
        return ErrorCode.cancelled
    return ErrorCode.error
