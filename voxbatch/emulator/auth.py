"""API key check shared by the websocket upgrade and the HTTP endpoints."""

from __future__ import annotations

import hmac

from aiohttp import web


def bearer_key(request: web.Request) -> str:
    """The key from `Authorization: Bearer <key>`, or "" when absent or malformed."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def key_accepted(given: str, expected: str | None) -> bool:
    if not given:
        return False
    if expected is None:
        return True
    # Headers may carry any bytes (aiohttp decodes them with surrogateescape): compare bytes.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def unauthorized() -> web.Response:
    """What Mistral answers for a missing or wrong key."""
    return web.json_response({"detail": "Unauthorized"}, status=401)
