"""The broker holds its ground: header deadlines, a connection cap, and a log that cannot flood.

uvicorn (0.55, h11) arms no timer while a connection waits for its request headers, and its
keep-alive timer is cancelled by any byte received, so a client that sends its headers one
byte at a time (or nothing at all) holds a connection for ever; a thousand of them starve
everyone. Its ``limit_concurrency`` answers plain text and logs one warning per refused
request. So the broker runs its own h11 protocol (:func:`guarded_protocol`):

* **header deadline**: a connection waiting for request headers (a new one, or a kept-alive
  one after its last response) is closed when they are not complete ``header_timeout``
  seconds later, however many bytes trickle in meanwhile (header size stays bounded by
  h11's ``h11_max_incomplete_event_size``);
* **connection cap**: at most ``max_connections`` open connections. When a new one would pass
  the cap, a connection that is trickling its headers (oldest first), or else the longest
  silent one (idle keep-alive), is closed to make room, so a flood of slow clients cannot lock out a client that
  sends a whole request at once; when every connection is inside a request, the newcomer is
  answered 503 JSON (``ServerBusy``, ``Retry-After: 1``) after its headers, and beyond a small
  overshoot it is closed at once.

Body reads are bounded in the ASGI layer (``pdbg.server.app._BodyLimit``), and every log line
goes through :class:`RateLimitFilter` (see :func:`logging_config`).
"""

from __future__ import annotations

import json
import logging
import threading
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_TIMEOUT_S = 5.0
DEFAULT_BODY_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 512
MAX_HEADER_BYTES = 16 * 1024
DEFAULT_LOG_LINES_PER_INTERVAL = 20
DEFAULT_LOG_INTERVAL_S = 10.0

_BUSY_BODY = json.dumps({
    "error": "ServerBusy", "message": "the broker is at its connection limit",
    "hint": "Retry in a few seconds; if it persists, an admin can raise `pdbg serve --max-connections`.",
}).encode()


async def _busy_app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(_BUSY_BODY)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a connection cap (module docstring)."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    stats: dict = {}

    # -- lifecycle -----------------------------------------------------------------------
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = None
        self._arm_header_deadline()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        super().data_received(data)

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # Armed before the parent runs: it may start a pipelined request at once, which then
        # counts as "headers arrived" for this deadline.
        if not self.transport.is_closing():
            self._arm_header_deadline()
        super().on_response_complete()

    # -- header deadline -----------------------------------------------------------------
    def _arm_header_deadline(self) -> None:
        self._cancel_header_timer()
        self._armed_cycle = self.cycle
        self._waiting_since = time.monotonic()
        self._got_bytes = False
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _waiting_for_headers(self) -> bool:
        """No request has started since the deadline was armed (a new cycle means headers arrived)."""
        return self.cycle is self._armed_cycle and not self.transport.is_closing()

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self._waiting_for_headers():
            self._count("header_timeouts")
            self.transport.close()

    # -- connection cap --------------------------------------------------------------------
    def _make_room(self) -> None:
        waiting = [c for c in self.connections
                   if c is not self and isinstance(c, GuardedH11Protocol) and c._waiting_for_headers()]
        if waiting:
            # Tricklers first (bytes came, the request did not: they have shown they are slow), oldest
            # first; a silent connection only when none trickles. A connection opened a moment ago
            # whose request is still in flight is silent, so under a reconnecting flood of slow
            # clients it is not the next victim of every newcomer before its bytes are read.
            oldest = min(waiting, key=lambda c: (not c._got_bytes, c._waiting_since))
            oldest._count("evicted")
            oldest._cancel_header_timer()
            oldest.transport.close()
            return
        if len(self.connections) > self.max_connections + max(8, self.max_connections // 4):
            self._count("refused")
            self.transport.close()           # far over the cap: not even a 503
            return
        self._count("busy")
        self.app = _busy_app                 # every slot is inside a request: 503 once headers arrive

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1


def guarded_protocol(*, header_timeout: float = DEFAULT_HEADER_TIMEOUT_S,
                     max_connections: int = DEFAULT_MAX_CONNECTIONS) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.run(http=…)`` with these limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"header_timeout": float(header_timeout), "max_connections": int(max_connections), "stats": {}})


# -- logging ----------------------------------------------------------------------------------

class RateLimitFilter(logging.Filter):
    """At most ``per_interval`` lines of one kind per ``interval`` seconds, then one notice.

    A kind is (logger, level, message template): the template, not the formatted text, so
    1,000 clients failing the same way are one kind. The first line of a kind after a quiet
    interval carries how many were suppressed before it. Lines of other kinds pass untouched.
    Thread-safe; remembers at most ``max_kinds`` kinds (the oldest are forgotten first).
    """

    def __init__(self, per_interval: int = DEFAULT_LOG_LINES_PER_INTERVAL,
                 interval: float = DEFAULT_LOG_INTERVAL_S, max_kinds: int = 1000, clock=time.monotonic) -> None:
        super().__init__()
        self.per_interval, self.interval, self.max_kinds, self.clock = int(per_interval), float(interval), max_kinds, clock
        self._kinds: dict[tuple, list] = {}     # kind -> [window start, lines seen, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        kind = (record.name, record.levelno, template[:300])
        now = self.clock()
        with self._lock:
            st = self._kinds.get(kind)
            if st is None or now - st[0] >= self.interval:
                before = st[2] if st else 0
                self._kinds.pop(kind, None)
                self._kinds[kind] = [now, 1, 0]
                while len(self._kinds) > self.max_kinds:
                    self._kinds.pop(next(iter(self._kinds)))
                if before and isinstance(record.msg, str):   # (the note holds no '%': safe with or without args)
                    record.msg = f"{record.msg} [{before} more like this were suppressed]"
                return True
            st[1] += 1
            if st[1] <= self.per_interval:
                return True
            st[2] += 1
            if st[1] == self.per_interval + 1:
                # turn this line into the one notice for the rest of the interval (no arguments,
                # no traceback: only the template, which holds no request data)
                record.msg = "more than %d lines like this in %g s; suppressing them until the interval ends: %s"
                record.args = (self.per_interval, self.interval, template[:300])
                record.exc_info, record.exc_text, record.stack_info = None, None, None
                return True
            return False


def logging_config(per_interval: int = DEFAULT_LOG_LINES_PER_INTERVAL,
                   interval: float = DEFAULT_LOG_INTERVAL_S) -> dict:
    """``logging.config.dictConfig`` for the broker: one stderr handler, rate-limited, no access log."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"ratelimit": {"()": RateLimitFilter, "per_interval": per_interval, "interval": interval}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "plain", "filters": ["ratelimit"]}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "uvicorn.error": {"level": "WARNING"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
    }
