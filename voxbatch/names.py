"""Names voxbatch derives from a user's file name, kept within the filesystem's NAME_MAX.

A legal name can be 255 bytes long; `<name>.error.txt`, `.<name>.tmp`, `<stem>.summary.md` or
`<stem> (1).wav` would then not be. Whatever is derived goes through `fit`: a name that does not
fit keeps its start (never cut inside a multibyte character), then `~` and a short hash of the
whole of it, so two long names that start alike still get names of their own.
"""

from __future__ import annotations

import hashlib
import os

NAME_MAX = 255  # bytes in one path component, on Linux and most filesystems
_HASH_CHARS = 8


def name_bytes(text: str) -> int:
    """The length of `text` on disk (undecodable bytes, held as surrogate escapes, count one)."""
    return len(os.fsencode(text))


def shorten(stem: str, reserve: int = 0) -> str:
    """`stem` when it leaves `reserve` bytes of NAME_MAX free; else its start, `~` and a hash."""
    room = NAME_MAX - reserve
    if name_bytes(stem) <= room:
        return stem
    tag = "~" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:_HASH_CHARS]
    budget = room - len(tag)
    kept: list[str] = []
    for char in stem:  # whole characters only
        budget -= name_bytes(char)
        if budget < 0:
            break
        kept.append(char)
    return "".join(kept) + tag


def fit(name: str, tail: str = "", *, head: str = "", reserve: int = 0) -> str:
    """`head + name + tail`, `name` shortened so that the whole (and `reserve` more bytes,
    for what a caller appends later) fits in NAME_MAX."""
    return head + shorten(name, name_bytes(head) + name_bytes(tail) + reserve) + tail


def note_name(name: str) -> str:
    """The `.error.txt` note beside a failed or quarantined original called `name`."""
    return fit(name, ".error.txt")
