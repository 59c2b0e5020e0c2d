"""One log record is one line, whatever the names it quotes."""

from __future__ import annotations

import io
import logging

from voxbatch.logs import RedactingFilter


def test_control_characters_in_arguments_and_messages_are_escaped() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("voxbatch.test.lines")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        name = "a\n2026-12-04 ERROR forged\r\x1b[2K\x9b\u2028b\tc.wav"
        logger.warning("claimed %s", name)
        logger.warning("two\nlines")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "WARNING claimed a\\n2026-12-04 ERROR forged\\r\\x1b[2K\\x9b\\u2028b\tc.wav",
        "WARNING two\\nlines",
    ]
