"""Turning Daytona's error responses and the host's HTTP failures into `provider-error`s.

Every function here returns an `Err` (the exception componentize-py turns into the `error` case
of a WIT `result`); callers `raise` it. Messages quote Daytona's own message, never a header.
"""

import json
import math
import re

from componentize_py_types import Err
from wit_world.imports import http, types

# Longest excerpt of an error body quoted in a message, in characters.
BODY_EXCERPT_CHARS = 300

# Message phrases (lowercase) that mark a 400 as an account quota or capacity limit.
QUOTA_PHRASES = (
    "limit exceeded",
    "exceeds maximum allowed",
    "no available runners",
    "quota",
    "limit reached",
)

# Message phrases that mark a 400 as a snapshot or region set-up problem.
CONFIG_PHRASES = ("Snapshot ", "Region not found", "default region")

# The largest value of a WIT u64.
U64_MAX = 2**64 - 1

# A Retry-After value in seconds: an integer or a decimal (HTTP dates are ignored).
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def invalid_config(message):
    """An `invalid-config` error."""
    return Err(types.ProviderError_InvalidConfig(message))


def other(message):
    """An `other` error."""
    return Err(types.ProviderError_Other(message))


def from_status(action, status, headers, body):
    """Maps a non-2xx response of `action` (e.g. `create sandbox`) to a typed error."""
    detail = message_of(status, body)
    message = f"daytona {action}: {detail} (HTTP {status})"
    if status == 401:
        return Err(types.ProviderError_Unauthorized(message))
    if status == 403:
        return Err(types.ProviderError_Forbidden(message))
    if status == 404:
        if "Region not found" in detail:
            return invalid_config(message)
        return Err(types.ProviderError_NotFound(message))
    if status == 409:
        return Err(types.ProviderError_Conflict(message))
    if status == 429:
        return Err(
            types.ProviderError_RateLimited(
                types.RateLimit(message=message, retry_after_ms=retry_after_ms(headers))
            )
        )
    if status == 400 and is_quota(detail):
        return Err(types.ProviderError_Quota(message))
    if status == 400 and any(p in detail for p in CONFIG_PHRASES):
        return invalid_config(message)
    if status == 408 or 500 <= status <= 599:
        return Err(types.ProviderError_Unavailable(message))
    return other(message)


def from_http_error(action, err):
    """Maps the host's failure to deliver a request for `action` to a typed error."""
    if isinstance(err, http.HttpError_Denied):
        # The host explains denials itself; its text says what grant would allow the request.
        return other(err.value)
    if isinstance(err, (http.HttpError_Timeout, http.HttpError_Connect)):
        return Err(types.ProviderError_Unavailable(f"daytona {action}: {err.value}"))
    if isinstance(err, http.HttpError_TooLarge):
        return other(
            f"daytona {action}: the response exceeded the host's size cap of {err.value} bytes"
        )
    if isinstance(err, http.HttpError_InvalidRequest):
        return other(f"daytona {action}: invalid request: {err.value}")
    return other(f"daytona {action}: {getattr(err, 'value', err)}")


def message_of(status, body):
    """The human part of an error body: its JSON `message`, else its text, else `HTTP <status>`."""
    try:
        value = json.loads(body)
    except Exception:  # not JSON (or not UTF-8): quote the text below
        value = None
    if isinstance(value, dict):
        message = value.get("message")
        if isinstance(message, str) and message.strip():
            return excerpt(message.strip(), BODY_EXCERPT_CHARS)
        if isinstance(message, list):
            parts = [p for p in message if isinstance(p, str)]
            if parts:
                return excerpt(", ".join(parts), BODY_EXCERPT_CHARS)
    text = bytes(body).decode("utf-8", errors="replace").strip()
    if not text:
        return f"HTTP {status}"
    return excerpt(text, BODY_EXCERPT_CHARS)


def retry_after_ms(headers):
    """The longest wait asked for by `retry-after` or `retry-after-<name>` headers, in ms.

    Values are seconds, integer or decimal; other forms (HTTP dates) are ignored.
    """
    waits = []
    for name, value in headers:
        name = name.lower()
        if name != "retry-after" and not name.startswith("retry-after-"):
            continue
        value = value.strip()
        if not _SECONDS.fullmatch(value):
            continue
        secs = float(value)
        if math.isfinite(secs) and secs >= 0:
            # Saturate like a float-to-u64 cast: a u64 is what the WIT record holds.
            waits.append(min(math.ceil(secs * 1000), U64_MAX))
    return max(waits) if waits else None


def is_quota(message):
    """Whether a 400 message describes a quota, tier limit or capacity shortage."""
    lower = message.lower()
    return any(p in lower for p in QUOTA_PHRASES)


def excerpt(text, limit):
    """The first `limit` characters of `text`, with `…` when cut."""
    if len(text) > limit:
        return text[:limit] + "…"
    return text
