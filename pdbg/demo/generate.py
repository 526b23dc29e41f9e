"""Synthetic production request logs with one injected incident (the demo dataset ``requests``).

Why this exists: pdbg's whole story (minimize at ingest, then answer only DP aggregates) has to be
shown on data that looks like what production emits *before* minimization — raw user ids, client
IPs, full user-agent strings, and free-text messages that leak e-mails, tokens and card numbers —
and that hides a known incident, so tests and ``pdbg demo`` can check that a DP investigation finds
it. Nothing here touches privacy machinery: this is pure data (DESIGN.md section 4, ``demo/``).

Shape of the data (all choices are deliberate, see the constants below):

* Users follow a Zipf-like activity law (about ``n_rows / 20`` users; a few automated clients send
  thousands of requests, most users a handful), so the policy's ``max_rows_per_unit`` (k) visibly
  caps heavy users. Each user has a home region, one user agent, one client IP and an e-mail.
* Traffic is diurnal-ish (a smooth daily curve plus a slow wobble), rows are sorted by ``ts``.
* Six services with their own endpoints, five regions, realistic HTTP status mix (≈0.5 % 5xx,
  a few % 4xx, heavy users get rate limited), a long tail of rare error codes (for partition
  selection), log-normal latency and response sizes (some above the policy bounds, to be clamped).
* One incident (a bad deploy): from ``truth.start`` to ``truth.end``, requests of ``truth.service``
  in ``truth.region`` fail with 5xx at ``truth.error_rate`` (mostly a new error code,
  ``E_DB_POOL_EXHAUSTED``) and are ``truth.latency_factor`` times slower.
* ``message`` is free text that contains PII / secrets at the rates in :data:`PII_RATES` (exactly
  counted in :attr:`DemoData.pii_counts`) next to benign look-alikes (UUIDs, timestamps, version
  strings, commit hashes, long digit ids that fail the Luhn check) that a redactor must leave alone.

Everything is vectorized (numpy + pyarrow); per-row Python work happens only on small pools.
Generation is chunked by time (:func:`iter_batches`) so 10M rows fit in bounded memory, and
:func:`generate` is exactly the concatenation of those chunks, so a seed names one dataset no
matter how it is produced. ``seed`` makes the *data* reproducible; it has nothing to do with DP
noise (which pdbg never seeds).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "DEMO_INCIDENT",
    "DEMO_SEED",
    "ENDPOINTS",
    "ERROR_CODES",
    "INCIDENT_ERROR_CODE",
    "PII_KINDS",
    "PII_RATES",
    "REGIONS",
    "SCHEMA",
    "SERVICES",
    "STATUS_CODES",
    "DemoData",
    "Incident",
    "generate",
    "iter_batches",
    "write",
]

# --------------------------------------------------------------------------------------------
# The world. Every value a dimension column can take is listed here; the packaged policy's public
# domains must list exactly these (a test checks it), because a value outside a public domain
# would silently vanish from DP answers.
# --------------------------------------------------------------------------------------------

SERVICES: tuple[str, ...] = ("checkout", "search", "auth", "catalog", "payments", "profile")
# Fairly balanced on purpose: the smallest service × region cell still carries enough traffic
# that an incident there is findable at total ε ≤ 1 (issue 4, item 8).
SERVICE_WEIGHTS = np.array([0.18, 0.20, 0.17, 0.18, 0.13, 0.14])

REGIONS: tuple[str, ...] = ("us-east", "us-west", "eu-west", "eu-central", "ap-south")
REGION_WEIGHTS = np.array([0.24, 0.20, 0.20, 0.18, 0.18])
# Slower regions are farther from the primary database.
REGION_LATENCY = np.array([1.0, 1.1, 1.05, 1.1, 1.35])

# service -> ((endpoint, weight, median latency ms, median bytes out, success status), ...)
ENDPOINTS: dict[str, tuple[tuple[str, float, float, float, int], ...]] = {
    "checkout": (
        ("GET /v1/cart", 0.40, 45, 3_500, 200),
        ("POST /v1/cart/items", 0.25, 60, 900, 201),
        ("POST /v1/checkout", 0.20, 180, 1_800, 200),
        ("POST /v1/checkout/confirm", 0.15, 240, 1_200, 200),
    ),
    "search": (
        ("GET /v1/search", 0.70, 90, 22_000, 200),
        ("GET /v1/search/suggest", 0.30, 25, 1_500, 200),
    ),
    "auth": (
        ("POST /v1/login", 0.30, 120, 700, 200),
        ("POST /v1/token/refresh", 0.50, 20, 600, 200),
        ("POST /v1/logout", 0.10, 15, 50, 204),
        ("POST /v1/password/reset", 0.10, 150, 300, 202),
    ),
    "catalog": (
        ("GET /v1/products", 0.45, 55, 48_000, 200),
        ("GET /v1/products/{id}", 0.45, 30, 9_000, 200),
        ("GET /v1/categories", 0.10, 12, 4_000, 200),
    ),
    "payments": (
        ("POST /v1/payments", 0.45, 320, 1_100, 201),
        ("GET /v1/payments/{id}", 0.40, 40, 1_400, 200),
        ("POST /v1/refunds", 0.15, 280, 900, 201),
    ),
    "profile": (
        ("GET /v1/profile", 0.60, 25, 2_500, 200),
        ("PATCH /v1/profile", 0.30, 70, 2_600, 200),
        ("GET /v1/profile/export", 0.10, 900, 700_000, 200),
    ),
}

# (status, error_code, weight within its class). error_code None = success.
_4XX = (
    (400, "E_VALIDATION", 0.38),
    (401, "E_AUTH_EXPIRED", 0.22),
    (403, "E_FORBIDDEN", 0.06),
    (404, "E_NOT_FOUND", 0.22),
    (409, "E_CONFLICT", 0.05),
    (429, "E_RATE_LIMIT", 0.07),
)
_5XX = (
    (500, "E_INTERNAL", 0.30),
    (500, "E_DB_TIMEOUT", 0.20),
    (502, "E_UPSTREAM_502", 0.25),
    (503, "E_UNAVAILABLE", 0.15),
    (504, "E_GATEWAY_TIMEOUT", 0.10),
)
INCIDENT_ERROR_CODE = "E_DB_POOL_EXHAUSTED"
# What the bad deploy produces: mostly a code never seen before (the tell-tale sign), plus more
# of the ordinary timeouts.
_INCIDENT_5XX = (
    (503, INCIDENT_ERROR_CODE, 0.60),
    (500, "E_DB_TIMEOUT", 0.25),
    (504, "E_GATEWAY_TIMEOUT", 0.15),
)
# The long tail: rare codes (some appear once in a dataset). A private key: DP partition
# selection must hide the rarest, so the policy gives error_code no public domain.
_N_TAIL_CODES = 400
_TAIL_SHARE = 0.03          # share of 4xx/5xx rows whose code is replaced by a tail code
ERROR_CODES: tuple[str, ...] = tuple(
    sorted({c for _, c, _ in _4XX + _5XX + _INCIDENT_5XX})
) + tuple(f"E_LEGACY_{i:04d}" for i in range(_N_TAIL_CODES))

STATUS_CODES: tuple[int, ...] = (200, 201, 202, 204, 304, 400, 401, 403, 404, 409, 429, 500, 502, 503, 504)

BASELINE_5XX = 0.005        # normal 5xx share
INCIDENT_ERROR_RATE = 0.50  # 5xx share inside the incident: a bad deploy that fails half the calls
BASELINE_4XX = 0.03         # normal 4xx share
_304_SHARE = 0.06           # share of GET successes answered 304 (catalog/search caching)

SCHEMA = pa.schema([
    ("ts", pa.timestamp("us")),          # UTC wall clock, no zone: see module notes on ts
    ("user_id", pa.string()),
    ("session_id", pa.string()),
    ("service", pa.string()),
    ("endpoint", pa.string()),
    ("region", pa.string()),
    ("status", pa.int32()),
    ("error_code", pa.string()),
    ("latency_ms", pa.float64()),
    ("bytes_out", pa.int64()),
    ("user_agent", pa.string()),
    ("client_ip", pa.string()),
    ("message", pa.string()),
    ("email", pa.string()),              # NOT in the policy: must be dropped by the allowlist
    ("debug_headers", pa.string()),      # NOT in the policy: must be dropped by the allowlist
])

PII_KINDS: tuple[str, ...] = (
    "email", "ipv4", "ipv6", "phone", "card", "jwt", "bearer", "aws_key",
    "url_userinfo", "url_secret", "pem",
)
# Share of rows whose message carries one item of that kind (kinds are mutually exclusive per row).
PII_RATES: dict[str, float] = {
    "email": 0.020, "ipv4": 0.015, "ipv6": 0.004, "phone": 0.008, "card": 0.003, "jwt": 0.004,
    "bearer": 0.008, "aws_key": 0.002, "url_userinfo": 0.003, "url_secret": 0.005, "pem": 0.0005,
}
_BENIGN_KINDS = ("uuid", "timestamp", "version", "sha", "order_id", "trace_id")
_BENIGN_RATES = np.array([0.25, 0.08, 0.06, 0.04, 0.04, 0.03])

DEMO_SEED = 7
DEMO_START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_DEFAULT_CHUNK = 1_000_000


@dataclass(frozen=True)
class Incident:
    """An injected incident; as ``DemoData.truth`` it is the ground truth the demo must find.

    From ``start`` (a whole minute, UTC, inclusive) to ``end`` (exclusive), requests of ``service``
    in ``region`` get a 5xx with probability ``error_rate`` (instead of ~``baseline_error_rate``)
    and ``latency_factor`` times their usual latency. ``end=None`` means "until the data ends".
    """

    service: str
    region: str
    start: datetime
    end: datetime | None = None
    error_rate: float = INCIDENT_ERROR_RATE
    latency_factor: float = 5.0
    baseline_error_rate: float = BASELINE_5XX
    error_code: str = INCIDENT_ERROR_CODE

    @property
    def start_naive(self) -> datetime:
        """``start`` as a naive UTC datetime, comparable with the ``ts`` column read back."""
        return _naive_utc(self.start)

    @property
    def end_naive(self) -> datetime | None:
        return None if self.end is None else _naive_utc(self.end)

    @property
    def minutes(self) -> float:
        assert self.end is not None
        return (self.end - self.start).total_seconds() / 60


# The canonical story (matches the example queries in the shared corpus: checkout, 14:00–14:30).
DEMO_INCIDENT = Incident(
    service="checkout", region="eu-west",
    start=datetime(2026, 11, 20, 14, 7, tzinfo=UTC), end=datetime(2026, 11, 20, 15, 22, tzinfo=UTC),
)


@dataclass
class DemoData:
    """A generated dataset.

    table: the raw rows (:data:`SCHEMA`), sorted by ``ts``.
    truth: the incident actually injected (resolved: ``end`` is set, times are whole minutes).
    pii_counts: rows whose ``message`` contains one item of each kind in :data:`PII_KINDS` (exact).
    n_users: number of distinct users in the world (some may send no request in small datasets).
    seed: the seed used (``None`` = fresh entropy).
    """

    table: pa.Table
    truth: Incident
    pii_counts: dict[str, int]
    n_users: int
    seed: int | None = None
    benign_counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Small vectorized helpers
# --------------------------------------------------------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_B62 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)


def _naive_utc(d: datetime) -> datetime:
    return d.astimezone(UTC).replace(tzinfo=None) if d.tzinfo else d


def _aware_utc(d: datetime) -> datetime:
    return d.astimezone(UTC) if d.tzinfo else d.replace(tzinfo=UTC)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a cheap bijective hash used to derive stable ids (session ids)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _hex_strings(values: np.ndarray, width: int = 16) -> pa.Array:
    """Fixed-width lowercase hex of uint64 values, built as one byte buffer (no per-row Python)."""
    v = values.astype(np.uint64)
    shifts = np.arange(4 * (width - 1), -1, -4, dtype=np.uint64)
    nibbles = ((v[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.uint8)
    return _fixed_bytes_to_strings(_HEX[nibbles])


def _fixed_bytes_to_strings(chars: np.ndarray) -> pa.Array:
    """(n, w) uint8 matrix of ASCII -> pyarrow string array of n strings of width w."""
    n, w = chars.shape
    data = pa.py_buffer(np.ascontiguousarray(chars).tobytes())
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * w).tobytes())
    return pa.Array.from_buffers(pa.string(), n, [None, offsets, data])


def _rand_chars(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> list[str]:
    idx = rng.integers(0, len(alphabet), size=(n, width))
    return _fixed_bytes_to_strings(alphabet[idx]).to_pylist()


def _luhn_digit(digits: list[int]) -> int:
    """Check digit that makes ``digits + [d]`` pass the Luhn test."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def _luhn_ok(number: str) -> bool:
    ds = [int(c) for c in number]
    return _luhn_digit(ds[:-1]) == ds[-1]


def _b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def _choice(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    """Categorical draw by inverse CDF (faster than Generator.choice for large n)."""
    cdf = np.cumsum(weights / weights.sum())
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.random(n), side="right").astype(np.int32)


# --------------------------------------------------------------------------------------------
# User-agent strings (a quasi-identifier: many distinct full strings, a few very common)
# --------------------------------------------------------------------------------------------

def _user_agent_pool() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(human UAs, weights, automated-client UAs, weights). Deterministic: no randomness needed."""
    human: list[tuple[str, float]] = []
    for v in (118, 119, 120, 121):
        for plat, w in (("Windows NT 10.0; Win64; x64", 0.30), ("Macintosh; Intel Mac OS X 10_15_7", 0.15),
                        ("X11; Linux x86_64", 0.03)):
            human.append((f"Mozilla/5.0 ({plat}) AppleWebKit/537.36 (KHTML, like Gecko) "
                          f"Chrome/{v}.0.0.0 Safari/537.36", w / 4))
        human.append((f"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"Chrome/{v}.0.0.0 Mobile Safari/537.36", 0.10 / 4))
        human.append((f"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
                      f"Chrome/{v}.0.0.0 Mobile Safari/537.36", 0.06 / 4))
    for v in (119, 120, 121):
        for plat in ("Windows NT 10.0; Win64; x64; rv:{v}.0", "Macintosh; Intel Mac OS X 14.1; rv:{v}.0",
                     "X11; Ubuntu; Linux x86_64; rv:{v}.0"):
            human.append((f"Mozilla/5.0 ({plat.format(v=v)}) Gecko/20100101 Firefox/{v}.0", 0.07 / 9))
    for v in ("17.1", "17.2"):
        human.append((f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                      f"Version/{v} Safari/605.1.15", 0.04 / 2))
        ios = v.replace(".", "_")
        human.append((f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
                      f"(KHTML, like Gecko) Version/{v} Mobile/15E148 Safari/604.1", 0.09 / 2))
    for v in ("5.12.0", "5.12.1", "5.13.0"):
        human.append((f"ShopApp/{v} (iPhone; iOS 17.2; Scale/3.00)", 0.05 / 3))
        human.append((f"ShopApp/{v} (Android 14; Pixel 8; okhttp/4.12.0)", 0.04 / 3))
    human.append(("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", 0.03))
    bots = [
        ("curl/8.4.0", 0.2), ("curl/7.88.1", 0.1), ("python-requests/2.31.0", 0.3),
        ("okhttp/4.12.0", 0.1), ("Go-http-client/2.0", 0.15), ("PostmanRuntime/7.36.0", 0.05),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 0.1),
    ]
    hs, hw = zip(*human)
    bs, bw = zip(*bots)
    return list(hs), np.array(hw), list(bs), np.array(bw)


# --------------------------------------------------------------------------------------------
# The world: users and pools, built once per dataset
# --------------------------------------------------------------------------------------------

_FIRST = ("anna", "ben", "carla", "dmitri", "emma", "farid", "gita", "hugo", "ines", "jonas", "kim",
          "lena", "marco", "nadia", "omar", "priya", "quinn", "rosa", "sven", "tara", "uma", "viktor",
          "wei", "xenia", "yusuf", "zoe", "li", "jane", "john", "maria")
_LAST = ("smith", "muller", "garcia", "rossi", "kowalski", "nguyen", "silva", "tanaka", "dubois",
         "jensen", "novak", "okafor", "patel", "schmidt", "larsen", "moreau", "costa", "ivanova")
_MAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "gmx.de", "web.de", "icloud.com",
                 "example.org", "mail.co.uk")
_PUBLIC_V4_FIRST = np.array([3, 18, 23, 31, 34, 35, 37, 45, 52, 54, 62, 77, 78, 81, 82, 85, 86, 88, 91, 93,
                             95, 98, 103, 104, 109, 112, 117, 122, 145, 151, 176, 178, 185, 188, 193, 203, 212, 217])


@dataclass
class _World:
    users: int
    user_weight_cdf: np.ndarray
    user_region: np.ndarray            # home region index per user
    user_agent_idx: np.ndarray         # index into ua pool per user
    ua_pool: pa.Array
    user_ids: pa.Array
    user_ip: pa.Array
    user_email: pa.Array
    user_heavy: np.ndarray             # bool: automated heavy clients (rate limited sometimes)
    session_phase: np.ndarray          # seconds, per user
    session_key: np.ndarray            # uint64 per user, salt of the session id hash
    incident: Incident
    start: datetime                    # aware UTC
    seconds: int
    per_second: np.ndarray             # rows per second of the window (sums to n_rows)
    pii_pool: pa.Array                 # "" + one pool per kind + per-user e-mail snippets
    pii_offsets: dict[str, int]
    pii_pool_size: int
    benign_pool: pa.Array
    benign_offsets: dict[str, int]
    benign_pool_size: int


def _user_weights(n_users: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf–Mandelbrot activity, shuffled so activity is unrelated to the id.

    Exponent 1.0 with offset 50: with 10k users the busiest sends ~0.4 % of all requests, the top
    1 % of users about 20 %, the median user about seven — the shape of real request logs, where a few
    integrations and bots dominate. This is what makes the per-user row cap k matter.
    """
    ranks = np.arange(1, n_users + 1, dtype=np.float64)
    w = (ranks + 50.0) ** -1.0
    w /= w.sum()
    return w[rng.permutation(n_users)]


def _random_incident(rng: np.random.Generator, start: datetime, hours: float) -> Incident:
    """Random service/region/start; start in the middle part of the window, 45–90 minutes long.

    The incident starts at least 30 minutes in (a baseline to compare with) and ends at least
    20 minutes before the data does (so the change is bracketed on both sides).
    """
    total = int(hours * 60)
    duration = int(rng.integers(45, 91))
    lo, hi = 30, max(31, total - duration - 20)
    begin = int(rng.integers(lo, hi + 1)) if hi > lo else min(lo, total - 1)
    end = min(begin + duration, total)
    return Incident(
        service=SERVICES[int(rng.integers(len(SERVICES)))],
        region=REGIONS[int(rng.integers(len(REGIONS)))],
        start=start + timedelta(minutes=begin),
        end=start + timedelta(minutes=end),
        error_rate=INCIDENT_ERROR_RATE,
    )


def _resolve_incident(inc: Incident, start: datetime, hours: float) -> Incident:
    if inc.service not in SERVICES:
        raise ValueError(f"incident service {inc.service!r} is not one of {SERVICES}")
    if inc.region not in REGIONS:
        raise ValueError(f"incident region {inc.region!r} is not one of {REGIONS}")
    s = _aware_utc(inc.start).replace(second=0, microsecond=0)
    e = _aware_utc(inc.end) if inc.end is not None else start + timedelta(hours=hours)
    e = e.replace(second=0, microsecond=0)
    if not s < e:
        raise ValueError("incident start must be before its end")
    return replace(inc, start=s, end=e)


def _diurnal_per_second(n_rows: int, start: datetime, seconds: int, rng: np.random.Generator) -> np.ndarray:
    """Rows per second: a daily sine (peak ~15:00 UTC, when Europe and US overlap) plus a slow wobble."""
    t = np.arange(seconds, dtype=np.float64)
    hour = start.hour + start.minute / 60 + t / 3600
    lam = 1.0 + 0.35 * np.sin(2 * np.pi * (hour - 9.0) / 24)
    phase = rng.random(2) * 2 * np.pi
    lam *= 1.0 + 0.05 * np.sin(2 * np.pi * t / 2700 + phase[0]) + 0.03 * np.sin(2 * np.pi * t / 600 + phase[1])
    return rng.multinomial(n_rows, lam / lam.sum())


def _pii_pools(rng: np.random.Generator, user_email: pa.Array, start: datetime) -> tuple[pa.Array, dict[str, int]]:
    """Snippets (each with a leading space) carrying one PII item of one kind.

    Pools are small (512 per kind) and built in Python once; rows pick from them. E-mails are the
    row's own user's address ("reset link sent to …"), as in real logs.
    """
    P = 512
    pools: dict[str, list[str]] = {}
    v4 = rng.integers(1, 255, size=(P, 4))
    v4[:, 0] = rng.choice(_PUBLIC_V4_FIRST, size=P)
    pools["ipv4"] = [f" forwarded_for={a}.{b}.{c}.{d}" if i % 2 else f" peer {a}.{b}.{c}.{d} reset connection"
                     for i, (a, b, c, d) in enumerate(v4.tolist())]
    g6 = rng.integers(0, 65536, size=(P, 6)).tolist()
    pools["ipv6"] = [f" client 2a02:{a:x}:{b:x}:{c:x}:{d:x}:{e:x}:{f:x}:1 retrying" if i % 3 else
                     f" from [2001:{a:x}:{b:x}::{f:x}]:443" for i, (a, b, c, d, e, f) in enumerate(g6)]
    ph = rng.integers(0, 10, size=(P, 10)).tolist()
    phones = []
    for i, d in enumerate(ph):
        s = "".join(map(str, d))
        fmt = i % 4
        if fmt == 0:
            phones.append(f" callback requested at +1-{2 + d[0] % 8}{s[1:3]}-555-{s[3:7]}")
        elif fmt == 1:
            phones.append(f" sms to +44 20 {s[0:4]} {s[4:8]} failed")
        elif fmt == 2:
            phones.append(f" phone=(4{s[1:3]}) {s[3:6]}-{s[6:10]}")
        else:
            phones.append(f" contact +49 30 {s[0:4]}{s[4:8]}")
    pools["phone"] = phones
    cards = []
    for i, d in enumerate(rng.integers(0, 10, size=(P, 15)).tolist()):
        prefix = [4] if i % 3 == 0 else [5, 1 + d[0] % 5] if i % 3 == 1 else [3, 7]
        body = prefix + d[len(prefix):14 if prefix[0] == 3 else 15]
        num = "".join(map(str, body + [_luhn_digit(body)]))
        if i % 4 == 0:
            num = " ".join(num[j:j + 4] for j in range(0, len(num), 4))
        elif i % 4 == 1:
            num = "-".join(num[j:j + 4] for j in range(0, len(num), 4))
        cards.append(f" payment declined card={num}" if i % 2 else f" charging card {num} amount=42.00 EUR")
    pools["card"] = cards
    sigs = _rand_chars(rng, P, 43, _B62)
    header = _b64url({"alg": "HS256", "typ": "JWT"})
    uids = rng.integers(10_000, 999_999, size=P).tolist()
    iat = int(start.timestamp())
    pools["jwt"] = [f" token={header}.{_b64url({'sub': f'user-{u}', 'iat': iat + i, 'scope': 'cart'})}.{sig.replace('+', '-')}"
                    for i, (u, sig) in enumerate(zip(uids, sigs))]
    bearer = _rand_chars(rng, P, 40, _B62)
    pools["bearer"] = [f" Authorization: Bearer {b}" if i % 2 else f" upstream rejected api_key={b[:32]}"
                       for i, b in enumerate(bearer)]
    aws = _rand_chars(rng, P, 16, _B62[:26])
    aws_digits = rng.integers(0, 10, size=(P, 4)).tolist()
    pools["aws_key"] = [f" s3 put failed key AKIA{a[:12]}{''.join(map(str, d))}" for a, d in zip(aws, aws_digits)]
    pw = _rand_chars(rng, P, 12, _B62)
    pools["url_userinfo"] = [f" fetching https://svc_{i % 7}:{p}@internal-registry.example.com/v2/pkg" if i % 2 else
                             f" redis://default:{p}@cache-{i % 5}.internal:6379/0 unreachable"
                             for i, p in enumerate(pw)]
    sec = _rand_chars(rng, P, 32, _B62)
    pools["url_secret"] = [f" callback https://partner.example.net/hook?order=1&token={s}" if i % 2 else
                           f" GET /v1/export?access_token={s}&format=csv"
                           for i, s in enumerate(sec)]
    pem_body = _rand_chars(rng, P, 64, _B62)
    pools["pem"] = [f" loaded key -----BEGIN PRIVATE KEY-----\n{b}\n{b[::-1]}\n-----END PRIVATE KEY-----"
                    for b in pem_body]
    email_snips = pc.binary_join_element_wise(
        pa.array([" password reset link sent to "] * 1, pa.string())[0], user_email, "")

    parts: list[pa.Array] = [pa.array([""], pa.string())]
    offsets: dict[str, int] = {}
    pos = 1
    for kind in PII_KINDS:
        if kind == "email":
            continue
        offsets[kind] = pos
        parts.append(pa.array(pools[kind], pa.string()))
        pos += P
    offsets["email"] = pos   # + user index
    parts.append(email_snips)
    return pa.concat_arrays(parts), offsets


def _benign_pool(rng: np.random.Generator, start: datetime, seconds: int) -> tuple[pa.Array, dict[str, int]]:
    """Look-alikes a redactor must NOT touch: UUIDs, ISO timestamps, versions, hashes, long ids."""
    P = 2048
    hi, lo = rng.integers(0, 2**63, size=P, dtype=np.int64), rng.integers(0, 2**63, size=P, dtype=np.int64)
    h = _hex_strings(hi.astype(np.uint64)).to_pylist()
    l_ = _hex_strings(lo.astype(np.uint64)).to_pylist()
    pools: dict[str, list[str]] = {
        "uuid": [f" request_id={a[:8]}-{a[8:12]}-4{a[13:16]}-a{b[1:4]}-{b[4:16]}" for a, b in zip(h, l_)],
        "timestamp": [f" retry at {(start + timedelta(seconds=int(s))).strftime('%Y-%m-%dT%H:%M:%S')}Z"
                      for s in rng.integers(0, seconds, size=P)],
        "version": [f" build v{a}.{b}.{c}" if i % 2 else f" client_version={a}.{b}.{c}-rc{c % 3}"
                    for i, (a, b, c) in enumerate(rng.integers(0, 30, size=(P, 3)).tolist())],
        "sha": [f" deploy sha={a[:7]}" if i % 2 else f" commit {a}{b[:8]}" for i, (a, b) in enumerate(zip(h, l_))],
        "order_id": [f" order {n}" for n in rng.integers(10**11, 10**12, size=P).tolist()],
    }
    traces = []
    for d in rng.integers(0, 10, size=(P, 16)).tolist():
        d[0] = 1 + d[0] % 9
        s = "".join(map(str, d))
        if _luhn_ok(s):        # a trace id must not look like a valid card number
            s = s[:-1] + str((int(s[-1]) + 1) % 10)
        traces.append(f" trace_id={s}")
    pools["trace_id"] = traces
    parts = [pa.array([""], pa.string())]
    offsets: dict[str, int] = {}
    pos = 1
    for kind in _BENIGN_KINDS:
        offsets[kind] = pos
        parts.append(pa.array(pools[kind], pa.string()))
        pos += P
    return pa.concat_arrays(parts), offsets


def _build_world(n_rows: int, ss: np.random.SeedSequence, start: datetime, hours: float,
                 incident: Incident | None) -> _World:
    rng = np.random.default_rng(ss)
    n_users = max(50, n_rows // 20)
    weights = _user_weights(n_users, rng)
    cdf = np.cumsum(weights)
    cdf[-1] = 1.0
    heavy = weights >= np.sort(weights)[-max(1, n_users // 1000)]   # top 0.1 %: integrations / bots

    human, hw, bots, bw = _user_agent_pool()
    ua_pool = pa.array(human + bots, pa.string())
    ua_idx = _choice(rng, n_users, hw)
    ua_idx[heavy] = len(human) + _choice(rng, int(heavy.sum()), bw)

    ids = rng.choice(np.arange(10_000, 10_000 + 20 * n_users), size=n_users, replace=False)
    user_ids = pc.binary_join_element_wise("user-", pc.cast(pa.array(ids), pa.string()), "")

    # Client IPs: one per user, ~15 % IPv6. Built with Arrow string kernels.
    o = rng.integers(1, 255, size=(n_users, 4))
    o[:, 0] = rng.choice(_PUBLIC_V4_FIRST, size=n_users)
    v4 = pc.binary_join_element_wise(*[pc.cast(pa.array(o[:, j]), pa.string()) for j in range(4)], ".")
    g = rng.integers(0, 2**63, size=(n_users, 2), dtype=np.int64).astype(np.uint64)
    a, b = _hex_strings(g[:, 0]), _hex_strings(g[:, 1])
    v6 = pc.binary_join_element_wise(
        "2a01", pc.utf8_slice_codeunits(a, 0, 4), pc.utf8_slice_codeunits(a, 4, 8),
        pc.utf8_slice_codeunits(a, 8, 12), pc.utf8_slice_codeunits(b, 0, 4),
        pc.utf8_slice_codeunits(b, 4, 8), pc.utf8_slice_codeunits(b, 8, 12), pc.utf8_slice_codeunits(b, 12, 16), ":")
    user_ip = pc.if_else(pa.array(rng.random(n_users) < 0.15), v6, v4)

    first = pa.array(_FIRST).take(pa.array(rng.integers(0, len(_FIRST), n_users)))
    last = pa.array(_LAST).take(pa.array(rng.integers(0, len(_LAST), n_users)))
    num = pc.cast(pa.array(rng.integers(1, 999, n_users)), pa.string())
    dom = pa.array(_MAIL_DOMAINS).take(pa.array(rng.integers(0, len(_MAIL_DOMAINS), n_users)))
    local = pc.binary_join_element_wise(first, last, ".")
    local = pc.if_else(pa.array(rng.random(n_users) < 0.5), pc.binary_join_element_wise(local, num, ""), local)
    user_email = pc.binary_join_element_wise(local, dom, "@")

    seconds = int(round(hours * 3600))
    if incident is None:
        incident = _random_incident(rng, start, hours)
    incident = _resolve_incident(incident, start, hours)
    per_second = _diurnal_per_second(n_rows, start, seconds, rng)
    pii_pool, pii_offsets = _pii_pools(rng, user_email, start)
    benign_pool, benign_offsets = _benign_pool(rng, start, seconds)
    return _World(
        users=n_users, user_weight_cdf=cdf, user_region=_choice(rng, n_users, REGION_WEIGHTS),
        user_agent_idx=ua_idx, ua_pool=ua_pool, user_ids=user_ids, user_ip=user_ip, user_email=user_email,
        user_heavy=heavy, session_phase=rng.random(n_users) * 1800,
        session_key=rng.integers(0, 2**63, size=n_users, dtype=np.int64).astype(np.uint64),
        incident=incident, start=start, seconds=seconds, per_second=per_second,
        pii_pool=pii_pool, pii_offsets=pii_offsets, pii_pool_size=len(pii_pool),
        benign_pool=benign_pool, benign_offsets=benign_offsets, benign_pool_size=len(benign_pool),
    )


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------

# Flattened endpoint table, so per-row lookups are plain numpy fancy indexing.
_EP_NAMES = [e[0] for s in SERVICES for e in ENDPOINTS[s]]
_EP_SERVICE = np.array([i for i, s in enumerate(SERVICES) for _ in ENDPOINTS[s]], dtype=np.int32)
_EP_LAT = np.array([e[2] for s in SERVICES for e in ENDPOINTS[s]], dtype=np.float64)
_EP_BYTES = np.array([e[3] for s in SERVICES for e in ENDPOINTS[s]], dtype=np.float64)
_EP_OK = np.array([e[4] for s in SERVICES for e in ENDPOINTS[s]], dtype=np.int32)
_EP_GET = np.array([e[0].startswith("GET") for s in SERVICES for e in ENDPOINTS[s]])
_EP_FIRST = np.cumsum([0] + [len(ENDPOINTS[s]) for s in SERVICES])[:-1]
_EP_CDF = [np.cumsum([e[1] for e in ENDPOINTS[s]]) / sum(e[1] for e in ENDPOINTS[s]) for s in SERVICES]

# Error-code table: index -> (status, code)
_CODE_LIST = list(ERROR_CODES)
_CODE_INDEX = {c: i for i, c in enumerate(_CODE_LIST)}
_CODE_STATUS = np.array([next((s for s, c, _ in _4XX + _5XX + _INCIDENT_5XX if c == code), 0)
                         for code in _CODE_LIST], dtype=np.int32)
_CODE_PHRASE = {
    "E_VALIDATION": "validation failed: field 'quantity' must be positive",
    "E_AUTH_EXPIRED": "session expired, re-authentication required",
    "E_FORBIDDEN": "forbidden: missing scope",
    "E_NOT_FOUND": "resource not found",
    "E_CONFLICT": "conflict: version mismatch, please retry",
    "E_RATE_LIMIT": "rate limit exceeded (120 req/min), retry after 30s",
    "E_INTERNAL": "internal error: unexpected nil pointer in handler",
    "E_DB_TIMEOUT": "database query timeout after 5000 ms",
    "E_UPSTREAM_502": "upstream returned 502 Bad Gateway",
    "E_UNAVAILABLE": "service unavailable, circuit breaker open",
    "E_GATEWAY_TIMEOUT": "gateway timeout waiting for upstream",
    INCIDENT_ERROR_CODE: "connection pool exhausted: timeout acquiring db connection after 3000 ms",
}
_PHRASES = pa.array(
    ["ok", "served from cache", "request completed", "handled", "not modified"]
    + [_CODE_PHRASE.get(c, f"legacy error {c.lower()} raised by compatibility layer") for c in _CODE_LIST],
    pa.string(),
)
_N_OK_PHRASES = 5


def _draw_codes(rng: np.random.Generator, n: int, table: tuple) -> np.ndarray:
    idx = _choice(rng, n, np.array([w for _, _, w in table]))
    lut = np.array([_CODE_INDEX[c] for _, c, _ in table], dtype=np.int32)
    return lut[idx]


def _rows(world: _World, sec_lo: int, sec_hi: int, rng: np.random.Generator) -> tuple[pa.Table, dict, dict]:
    """Rows whose second-of-window lies in [sec_lo, sec_hi), already in time order."""
    counts = world.per_second[sec_lo:sec_hi]
    n = int(counts.sum())
    # Time: repeat each second by its count, spread rows evenly inside the second (sorted for free).
    secs = np.repeat(np.arange(sec_lo, sec_hi, dtype=np.int64), counts)
    first_of_sec = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(n, dtype=np.int64) - first_of_sec
    frac = (rank + rng.random(n)) / np.repeat(np.maximum(counts, 1), counts)
    t_us = secs * 1_000_000 + (frac * 1_000_000).astype(np.int64)
    t_us = np.maximum.accumulate(t_us)                    # guard: strictly non-decreasing
    base_us = int(_naive_utc(world.start).replace(tzinfo=UTC).timestamp() * 1_000_000)
    ts = pa.array(t_us + base_us, pa.timestamp("us"))

    user = np.searchsorted(world.user_weight_cdf, rng.random(n), side="right").astype(np.int64)
    user = np.minimum(user, world.users - 1)
    region = world.user_region[user].copy()
    roam = rng.random(n) < 0.03                           # travel / VPN
    region[roam] = _choice(rng, int(roam.sum()), REGION_WEIGHTS)
    service = _choice(rng, n, SERVICE_WEIGHTS)
    u = rng.random(n)
    ep = np.empty(n, dtype=np.int32)
    for s in range(len(SERVICES)):                         # loop over 6 services, not rows
        m = service == s
        ep[m] = _EP_FIRST[s] + np.searchsorted(_EP_CDF[s], u[m], side="right").clip(0, len(_EP_CDF[s]) - 1)

    inc = world.incident
    inc_lo = int((inc.start - world.start).total_seconds() * 1_000_000)
    inc_hi = int((inc.end - world.start).total_seconds() * 1_000_000)
    rel = t_us
    in_inc = ((service == SERVICES.index(inc.service)) & (region == REGIONS.index(inc.region))
              & (rel >= inc_lo) & (rel < inc_hi))

    # Status and error code.
    code = np.full(n, -1, dtype=np.int32)
    r = rng.random(n)
    p5 = np.where(in_inc, inc.error_rate, inc.baseline_error_rate)
    p4 = np.where(world.user_heavy[user], BASELINE_4XX + 0.12, BASELINE_4XX)
    is5 = r < p5
    is4 = (~is5) & (r < p5 + p4)
    n5 = is5 & ~in_inc
    code[n5] = _draw_codes(rng, int(n5.sum()), _5XX)
    i5 = is5 & in_inc
    code[i5] = _draw_codes(rng, int(i5.sum()), _INCIDENT_5XX)
    code[is4] = _draw_codes(rng, int(is4.sum()), _4XX)
    heavy4 = is4 & world.user_heavy[user] & (rng.random(n) < 0.6)  # bots mostly hit the rate limiter
    code[heavy4] = _CODE_INDEX["E_RATE_LIMIT"]
    tail = (code >= 0) & ~in_inc & (rng.random(n) < _TAIL_SHARE)
    n_tail = int(tail.sum())
    tail_idx = np.minimum(rng.zipf(1.3, size=n_tail) - 1, _N_TAIL_CODES - 1)
    code[tail] = len(_CODE_LIST) - _N_TAIL_CODES + tail_idx
    status = np.where(code >= 0, 0, _EP_OK[ep]).astype(np.int32)
    has = code >= 0
    cs = _CODE_STATUS[np.maximum(code, 0)]
    # tail codes keep the status class of the row they replaced
    status[has] = np.where(cs[has] > 0, cs[has], np.where(is5[has], 500, 400))
    not_mod = (~has) & _EP_GET[ep] & (rng.random(n) < _304_SHARE)
    status[not_mod] = 304

    # Latency: log-normal per endpoint and region; errors have their own shapes.
    lat = _EP_LAT[ep] * REGION_LATENCY[region] * np.exp(rng.normal(0.0, 0.55, n))
    lat[is4] *= 0.3
    timeout_codes = np.isin(code, [_CODE_INDEX["E_DB_TIMEOUT"], _CODE_INDEX[INCIDENT_ERROR_CODE]])
    lat[timeout_codes] = 3000 + rng.exponential(2500, int(timeout_codes.sum()))
    gw = code == _CODE_INDEX["E_GATEWAY_TIMEOUT"]
    lat[gw] = 30_000 + rng.exponential(200, int(gw.sum()))   # a few above the policy's upper bound
    lat[in_inc & ~is5] *= inc.latency_factor
    lat = np.round(np.clip(lat, 0.2, 120_000), 3)

    bytes_out = _EP_BYTES[ep] * np.exp(rng.normal(0.0, 0.8, n))
    bytes_out[has] = 120 + rng.integers(0, 400, int(has.sum()))
    bytes_out[status == 304] = 0
    bytes_out = np.round(bytes_out).astype(np.int64)

    # Sessions: a user's requests fall into 30-minute sessions (offset per user); the id is a
    # keyed hash of (user, session number) so it is stable across chunks.
    sess_no = ((t_us // 1_000_000 + world.session_phase[user]) // 1800).astype(np.uint64)
    sess = _mix64(world.session_key[user] ^ _mix64(sess_no + np.uint64(0x9E3779B97F4A7C15)))
    session_id = _hex_strings(sess)

    # Message: base "<endpoint> <status>: <phrase>" + optional PII snippet + optional benign snippet.
    phrase = np.where(has, _N_OK_PHRASES + np.maximum(code, 0), rng.integers(0, 4, n))
    phrase[status == 304] = 4
    ep_arr = pa.array(_EP_NAMES, pa.string()).take(pa.array(ep))
    base = pc.binary_join_element_wise(ep_arr, pc.cast(pa.array(status), pa.string()), " ")
    base = pc.binary_join_element_wise(base, _PHRASES.take(pa.array(phrase)), ": ")

    rates = np.array([PII_RATES[k] for k in PII_KINDS])
    kind = _choice(rng, n, np.append(rates, 1.0 - rates.sum())).astype(np.int64)   # last = none
    pii_idx = np.zeros(n, dtype=np.int64)
    pii_counts: dict[str, int] = {}
    for k_i, k in enumerate(PII_KINDS):
        m = kind == k_i
        pii_counts[k] = int(m.sum())
        if k == "email":
            pii_idx[m] = world.pii_offsets["email"] + user[m]
        else:
            pii_idx[m] = world.pii_offsets[k] + rng.integers(0, 512, pii_counts[k])
    bkind = _choice(rng, n, np.append(_BENIGN_RATES, 1.0 - _BENIGN_RATES.sum())).astype(np.int64)
    ben_idx = np.zeros(n, dtype=np.int64)
    benign_counts: dict[str, int] = {}
    for b_i, b in enumerate(_BENIGN_KINDS):
        m = bkind == b_i
        benign_counts[b] = int(m.sum())
        ben_idx[m] = world.benign_offsets[b] + rng.integers(0, 2048, benign_counts[b])
    message = pc.binary_join_element_wise(
        base, world.pii_pool.take(pa.array(pii_idx)), world.benign_pool.take(pa.array(ben_idx)), "")

    user_pa = pa.array(user)
    error_code = pa.array(_CODE_LIST, pa.string()).take(pa.array(np.where(has, code, 0)))
    error_code = pc.if_else(pa.array(has), error_code, pa.scalar(None, pa.string()))
    dbg = rng.random(n) < 0.05
    debug_headers = pc.binary_join_element_wise(
        '{"x-forwarded-for": "', world.user_ip.take(user_pa), '", "cookie": "sid=', session_id, '"}', "")
    debug_headers = pc.if_else(pa.array(dbg), debug_headers, pa.scalar(None, pa.string()))

    table = pa.Table.from_arrays([
        ts,
        world.user_ids.take(user_pa),
        session_id,
        pa.array(SERVICES, pa.string()).take(pa.array(service)),
        ep_arr,
        pa.array(REGIONS, pa.string()).take(pa.array(region)),
        pa.array(status, pa.int32()),
        error_code,
        pa.array(lat, pa.float64()),
        pa.array(bytes_out, pa.int64()),
        world.ua_pool.take(pa.array(world.user_agent_idx[user])),
        world.user_ip.take(user_pa),
        message,
        world.user_email.take(user_pa),
        debug_headers,
    ], schema=SCHEMA)
    return table, pii_counts, benign_counts


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

def _prepare(n_rows: int, seed: int | None, start: datetime, hours: float,
             incident: Incident | None) -> tuple[_World, np.random.SeedSequence]:
    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    if hours <= 0:
        raise ValueError("hours must be positive")
    start = _aware_utc(start)
    ss = np.random.SeedSequence(seed)
    world = _build_world(n_rows, np.random.SeedSequence(ss.entropy, spawn_key=(0,)), start, hours, incident)
    return world, ss


def _chunk_bounds(world: _World, chunk_rows: int) -> list[tuple[int, int]]:
    """Split the window into runs of whole seconds holding about ``chunk_rows`` rows each."""
    cum = np.cumsum(world.per_second)
    bounds, lo = [], 0
    while lo < world.seconds:
        target = (cum[lo - 1] if lo else 0) + chunk_rows
        hi = int(np.searchsorted(cum, target, side="left")) + 1
        hi = min(max(hi, lo + 1), world.seconds)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def iter_batches(n_rows: int = 200_000, *, seed: int | None = None, start: datetime = DEMO_START,
                 hours: float = 4, incident: Incident | None = None,
                 chunk_rows: int = _DEFAULT_CHUNK) -> tuple[Incident, Iterator[pa.Table]]:
    """Like :func:`generate`, but yields time-ordered tables of about ``chunk_rows`` rows.

    Returns ``(truth, batches)``. Memory stays bounded by one chunk (plus the per-user world), so
    this is how 10M-row benchmark files are written. The chunk size is part of the dataset's
    identity: the same seed with the default chunk size gives exactly :func:`generate`'s table.
    """
    world, ss = _prepare(n_rows, seed, start, hours, incident)

    def _gen() -> Iterator[pa.Table]:
        for i, (lo, hi) in enumerate(_chunk_bounds(world, chunk_rows)):
            rng = np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(1, i)))
            yield _rows(world, lo, hi, rng)[0]

    return world.incident, _gen()


def generate(n_rows: int = 200_000, *, seed: int | None = None, start: datetime = DEMO_START,
             hours: float = 4, incident: Incident | None = None) -> DemoData:
    """Generate ``n_rows`` raw request-log rows over ``hours`` from ``start`` with one incident.

    ``incident=None`` draws a random service, region, start minute and duration from ``seed``
    (so 100 seeds give 100 different incidents); pass :data:`DEMO_INCIDENT` for the canonical
    story. ``seed=None`` uses fresh entropy. Rows are sorted by ``ts``. About 2–3 s per 1M rows.
    """
    world, ss = _prepare(n_rows, seed, start, hours, incident)
    tables, pii, ben = [], dict.fromkeys(PII_KINDS, 0), dict.fromkeys(_BENIGN_KINDS, 0)
    for i, (lo, hi) in enumerate(_chunk_bounds(world, _DEFAULT_CHUNK)):
        rng = np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(1, i)))
        t, p, b = _rows(world, lo, hi, rng)
        tables.append(t)
        for k, v in p.items():
            pii[k] += v
        for k, v in b.items():
            ben[k] += v
    table = pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]
    return DemoData(table=table, truth=world.incident, pii_counts=pii, n_users=world.users,
                    seed=seed, benign_counts=ben)


def write(table: pa.Table, path: str | Path, fmt: Literal["jsonl", "csv", "parquet"] | None = None) -> Path:
    """Write raw demo rows as production would ship them: JSON Lines (default), CSV or Parquet.

    ``fmt=None`` infers the format from the suffix (``.jsonl``/``.json``, ``.csv``, ``.parquet``).
    Timestamps are written as ISO-8601 UTC wall-clock strings in text formats.
    """
    path = Path(path)
    if fmt is None:
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv",
               ".parquet": "parquet", ".pq": "parquet"}.get(path.suffix.lower(), "jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path, compression="zstd", row_group_size=256_000)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    elif fmt == "jsonl":
        import duckdb

        con = duckdb.connect()
        try:
            con.register("demo_rows", table)
            target = str(path).replace("'", "''")
            con.execute(f"COPY (SELECT * FROM demo_rows) TO '{target}' (FORMAT json)")
        finally:
            con.close()
    else:
        raise ValueError(f"unknown format {fmt!r}: use jsonl, csv or parquet")
    return path
