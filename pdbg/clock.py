"""The one source of "now" for governance decisions (expiry, grants, retention).

Tests freeze time by monkeypatching :func:`now`; production code must call
``clock.now()`` (never ``datetime.now()`` directly) so that expiry logic is testable.
"""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def iso(ts: datetime | None = None) -> str:
    """UTC ISO-8601 with microseconds and a trailing Z, as stored in state and audit."""
    ts = ts or now()
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
