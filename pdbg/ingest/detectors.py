"""PII and secret detectors: regex + checksum, offline, in two forms that agree.

Detector names are also audit field names (ingest records carry counts per detector),
so none is a name the audit log refuses as secret-bearing (``secret``, ``api_key``…):
``credential`` is ``password=…``-style assignments, ``vendor_key`` is ``sk_live_…``-style keys.

Why two forms: ingestion must be vectorized (DuckDB SQL over millions of rows), while
`pdbg check` scans notebook outputs (Python strings). Both forms are generated from the
one table :data:`DETECTORS`, and a test checks they produce identical text and counts.

How a detector works. Each detector is one RE2-compatible pattern whose *first group*
is context that is kept (e.g. ``password=`` or the character before an IPv4 address);
the rest of the match is replaced by the detector's placeholder, e.g. ``<EMAIL>``.
Detectors run in the fixed order of :data:`DETECTORS`; placeholders contain only
``<``, ``>``, ``_`` and capitals, and no value class of a later detector accepts ``<``,
so a later detector never rewrites an earlier placeholder. Hence per-detector counts
are "placeholder occurrences after minus before" — cheap in SQL (``replace``, no
second regex pass) and identical in Python.

Patterns avoid ``\\d``/``\\s`` (Python's differ from RE2's on non-ASCII input) and
use explicit ASCII classes. Decisions on known false positives:

* UUIDs, ISO timestamps (``2024-01-15T12:30:45Z``), hex hashes (MD5/SHA-1/SHA-256 hex)
  and git SHAs are **not** matched: IPv6 needs 8 groups or ``::``; cards need a
  ``\\b`` before a 2–6 leading digit and either 13–19 contiguous digits or 4-digit
  groups; secrets of 40 characters are only taken after an ``aws_secret`` label.
* Long numeric ids: 13–19 digits starting 2–6 *and* passing Luhn are redacted as
  ``<CARD>`` (about 1 in 10 random ids of that shape): privacy wins over the id.
  Ids starting with 0, 1, 7, 8, 9 (e.g. epoch milliseconds) are never cards.
* Version strings: a 4-part dotted version whose parts are all ≤ 255 (``1.2.3.4``)
  is indistinguishable from an IPv4 address and **is** redacted. 3-part versions are
  not. A 5+-part dotted number (OID, ``1.2.3.4.5``) is not guarded on its right side:
  its first four parts are redacted (RE2 has no look-ahead); we prefer that error.
* Phones need a ``+`` country code or the ``(555) 123-4567`` / ``555-123-4567`` shape;
  bare digit runs are ids, not phones.
* ``std::vector``-like text is safe; ``abc::def`` is a valid IPv6 address and redacted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    r"(?:"
    rf"::[fF]{{4}}:{_IPV4}"  # IPv4-mapped
    rf"|(?:{_H}:){{7}}{_H}"  # full form
    rf"|(?:{_H}:){{1,7}}:(?:{_H}(?::{_H}){{0,6}})?"  # a::b, a::
    rf"|::{_H}(?::{_H}){{0,6}}"  # ::b
    r")"
)
_SECRET_WORDS = (
    r"password|passwd|pwd|secret|client_secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token"
    r"|refresh[_-]?token|token|private[_-]?key"
)
_VALUE = r"[^ \t\r\n&\"'<>,;]+"


@dataclass(frozen=True)
class Detector:
    name: str
    pattern: str  # RE2 and Python `re` compatible; group 1 is kept context

    @property
    def placeholder(self) -> str:
        return f"<{self.name.upper()}>"


# Order matters (see module docstring): structured secrets first, then contact data, then numbers.
DETECTORS: tuple[Detector, ...] = (
    Detector("pem", r"()-----BEGIN [A-Z0-9 ]{1,40}-----[\s\S]*?-----END [A-Z0-9 ]{1,40}-----"),
    Detector("jwt", r"()\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"),
    Detector("userinfo", r"(\b[A-Za-z][A-Za-z0-9+.-]{0,20}://)[^/ \t\r\n@<>]+@"),
    Detector("url_secret", rf"([?&;](?i:{_SECRET_WORDS}|key|sig|signature|code|session|sessionid|sid)=){_VALUE}"),
    Detector("bearer", r"(\b(?i:bearer|basic|token)[ \t]+)[A-Za-z0-9._~+/=-]{8,}"),
    Detector("aws_key", r"()\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b"),
    Detector("aws_secret", r"(\b(?i:aws_?secret(?:_access)?_?key|aws_secret)[\"' ]*[:=][\"' ]*)[A-Za-z0-9/+=]{40}"),
    Detector(
        "vendor_key",
        r"()\b(?:(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{20,}"
        r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[A-Za-z0-9_-]{35})",
    ),
    Detector("credential", rf"(\b(?i:{_SECRET_WORDS})[\"']?[ \t]*[:=][ \t]*[\"']?){_VALUE}"),
    Detector("email", r"()[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    Detector("ipv6", rf"(^|[^0-9A-Za-z:.])(?:{_IPV6})"),
    Detector("ipv4", rf"(^|[^0-9.])(?:{_IPV4})\b"),
    Detector(
        "card",
        r"()\+?\b[2-6](?:[0-9]{12,18}|[0-9]{3}(?:[ -][0-9]{4}){3}(?:[ -]?[0-9]{1,3})?|[0-9]{3}[ -][0-9]{6}[ -][0-9]{5})\b",
    ),
    Detector(
        "phone",
        r"(^|[^0-9A-Za-z+])(?:\+[1-9][0-9]{0,2}[ .-]?(?:\(?[0-9]{1,4}\)?[ .-]?){1,4}[0-9]{2,4}"
        r"|\([0-9]{3}\)[ ]?[0-9]{3}[-. ][0-9]{4}|[0-9]{3}[-.][0-9]{3}[-.][0-9]{4})\b",
    ),
)

#: Detectors whose pattern is applied twice: its kept left context can be consumed by the
#: previous match when two values are separated by a single character ("1.1.1.1,2.2.2.2").
_TWICE = frozenset({"ipv4", "ipv6", "phone"})
_BY_NAME = {d.name: d for d in DETECTORS}
NAMES: tuple[str, ...] = tuple(d.name for d in DETECTORS)
#: One pattern matching wherever any detector could fire: a cheap single-pass pre-filter, so
#: the full chain runs only on the few values that may hold something (the chain decides).
ANY_PATTERN = "|".join(f"(?:{d.pattern})" for d in DETECTORS)
_COMPILED = {d.name: re.compile(d.pattern, re.ASCII) for d in DETECTORS}


@dataclass(frozen=True)
class Finding:
    """Where a detector fired: ``text[start:end]`` is the detected value (never stored here)."""

    detector: str
    start: int
    end: int


# -- Python form -----------------------------------------------------------------------


def luhn_ok(candidate: str) -> bool:
    digits = [int(c) for c in candidate if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d >= 5 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(candidate: str) -> bool:
    # A leading "+" is matched only to reject the candidate: "+4915112345678" is a phone number.
    return not candidate.startswith("+") and luhn_ok(candidate)


def _count(text: str, ph: str) -> int:
    return text.count(ph)


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """Redact every detector's findings; return the text and per-detector counts.

    Mirrors :func:`redact_sql` step by step (same patterns, same order, same card
    replacement rule), so the two agree on any input.
    """
    counts: dict[str, int] = {}
    for d in DETECTORS:
        before = text
        if d.name == "card":
            text = _redact_cards(text)
        else:
            rx = _COMPILED[d.name]
            repl = r"\1" + d.placeholder
            text = rx.sub(repl, text)
            if d.name in _TWICE:
                text = rx.sub(repl, text)
        n = _count(text, d.placeholder) - _count(before, d.placeholder)
        if n:
            counts[d.name] = n
    return text, counts


def _redact_cards(text: str) -> str:
    # Same rule as SQL: every Luhn-valid candidate string is replaced wherever it occurs.
    for m in [m.group(0) for m in _COMPILED["card"].finditer(text)]:
        if _card_ok(m):
            text = text.replace(m, "<CARD>")
    return text


def scan_text(text: str) -> list[Finding]:
    """Findings (detector, start, end) in ``text``'s own coordinates, in text order.

    Runs the same ordered pipeline as :func:`redact_text`, keeping an offset map from
    the partly-redacted text back to the original, so a value hidden inside an earlier
    finding (an e-mail inside a PEM block) is reported once, by the earlier detector.
    """
    cur = text
    origin = list(range(len(text) + 1))  # origin[i]: offset in `text` of cur[i]
    findings: list[Finding] = []
    for d in DETECTORS:
        passes = 2 if d.name in _TWICE else 1
        for _ in range(passes):
            spans = _spans(d, cur)
            if not spans:
                continue
            pieces, new_origin, last = [], [], 0
            for s, e in spans:
                pieces.append(cur[last:s])
                new_origin.extend(origin[last:s])
                findings.append(Finding(d.name, origin[s], origin[e]))
                pieces.append(d.placeholder)
                new_origin.extend([origin[s]] * len(d.placeholder))
                last = e
            pieces.append(cur[last:])
            new_origin.extend(origin[last:])
            cur = "".join(pieces)
            origin = new_origin
    return sorted(findings, key=lambda f: (f.start, f.end))


def _spans(d: Detector, cur: str) -> list[tuple[int, int]]:
    """Non-overlapping spans of the replaced part (match minus kept group 1)."""
    rx = _COMPILED[d.name]
    if d.name != "card":
        return [(m.end(1), m.end()) for m in rx.finditer(cur)]
    valid = [m.group(0) for m in rx.finditer(cur) if _card_ok(m.group(0))]
    out: list[tuple[int, int]] = []
    for v in valid:  # the string.replace rule of _redact_cards, as spans
        i = cur.find(v)
        while i >= 0:
            if all(e <= i or s >= i + len(v) for s, e in out):
                out.append((i, i + len(v)))
            i = cur.find(v, i + len(v))
    return sorted(out)


def contains_pii(text: str) -> bool:
    return bool(scan_text(text))


# -- SQL form --------------------------------------------------------------------------


def _lit(s: str) -> str:
    """A SQL string literal of a constant from this module (never of data)."""
    return "'" + s.replace("'", "''") + "'"


def _luhn_sql(c: str) -> str:
    digits = f"string_split(reverse(regexp_replace({c}, '[^0-9]', '', 'g')), '')"
    doubled = "(CAST(d AS INTEGER) * 2 - CASE WHEN CAST(d AS INTEGER) >= 5 THEN 9 ELSE 0 END)"
    return (
        f"(list_sum(list_transform({digits}, lambda d, i: "
        f"CASE WHEN i % 2 = 0 THEN {doubled} ELSE CAST(d AS INTEGER) END)) % 10 = 0)"
    )


def _step_sql(d: Detector, expr: str) -> str:
    pat = _lit(d.pattern)
    if d.name == "card":
        valid = f"list_filter(regexp_extract_all({expr}, {pat}), lambda c: NOT starts_with(c, '+') AND {_luhn_sql('c')})"
        return (
            f"CASE WHEN regexp_matches({expr}, {pat}) THEN "
            f"list_reduce(list_prepend({expr}, {valid}), lambda acc, m: replace(acc, m, '<CARD>')) "
            f"ELSE {expr} END"
        )
    out = f"regexp_replace({expr}, {pat}, {_lit(chr(92) + '1' + d.placeholder)}, 'g')"
    if d.name in _TWICE:
        out = f"regexp_replace({out}, {pat}, {_lit(chr(92) + '1' + d.placeholder)}, 'g')"
    return out


def redact_sql_stages(expr: str) -> list[list[str]]:
    """The redaction as a list of stages of detector names; a stage is one nested expression.

    The card step references its input three times, so it must read a materialized
    column, not a nested expression (DuckDB would evaluate the nested chain three times).
    """
    stages: list[list[str]] = [[]]
    for d in DETECTORS:
        if d.name == "card":
            stages.append(["card"])
            stages.append([])
        else:
            stages[-1].append(d.name)
    return [s for s in stages if s]


def stage_sql(names: list[str], expr: str) -> str:
    """SQL applying the detectors ``names`` (in order) to the VARCHAR expression ``expr``."""
    for n in names:
        expr = _step_sql(_BY_NAME[n], expr)
    return expr


def count_sql(original: str, redacted: str, name: str) -> str:
    """SQL: how many times detector ``name`` fired on one value (placeholder count delta)."""
    ph = _lit(_BY_NAME[name].placeholder)
    n = len(_BY_NAME[name].placeholder)

    def occ(e: str) -> str:
        return f"((length(coalesce({e}, '')) - length(replace(coalesce({e}, ''), {ph}, ''))) // {n})"

    return f"({occ(redacted)} - {occ(original)})"


def redact_sql(expr: str) -> str:
    """One nested SQL expression redacting ``expr`` (convenient for small inputs and tests)."""
    for stage in redact_sql_stages(expr):
        expr = stage_sql(stage, f"({expr})")
    return expr


__all__ = [
    "DETECTORS",
    "NAMES",
    "Detector",
    "Finding",
    "scan_text",
    "redact_text",
    "contains_pii",
    "luhn_ok",
    "redact_sql",
    "redact_sql_stages",
    "stage_sql",
    "count_sql",
]
