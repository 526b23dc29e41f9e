"""The minimizing SELECT: one SQL statement per input file, built from the policy.

Why SQL: every transform (cast, HMAC token, detector chain, generalization) runs inside
DuckDB, vectorized and parallel; Python only assembles text from the policy (column
names are validated lower_snake identifiers, constants come from validated policy
fields, and the tokenization key and intervals are *bound parameters*).

The statement yields the kept columns plus bookkeeping columns that the ingest report
sums and then discards: ``__o__<col>`` (the original text of a value that a detector
flagged, NULL otherwise; the report counts placeholders against it),
``__d__<col>`` (a dropped column had a value), ``__f__<col>`` (a generalization could
not parse a value and stored NULL). Every input row is in the result; the caller keeps
only rows whose privacy unit is not NULL (a row that belongs to no unit cannot be
bounded per unit) and counts the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pdbg.errors import IngestError
from pdbg.ingest import detectors, tokenize
from pdbg.ingest.datasets import SQL_TYPES, output_type, quote_ident
from pdbg.policy.model import Column, ColumnType, DatasetPolicy, Generalize, Transform

_IPV4_RE = detectors._IPV4
_IPV6_RE = detectors._IPV6


@dataclass
class Minimization:
    """What :func:`build` produces for one input relation."""

    sql: str
    params: dict = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)  # kept, in table order
    # (col, detector) -> SQL over the staged row counting hits; evaluate only where the original is kept
    detector_hits: dict[tuple[str, str], str] = field(default_factory=dict)
    originals: dict[str, str] = field(default_factory=dict)  # redacted col -> staged original (NULL if clean)
    dropped: dict[str, str] = field(default_factory=dict)  # dropped/unknown column -> alias
    unknown: list[str] = field(default_factory=list)
    unparsed: dict[str, str] = field(default_factory=dict)  # generalized col -> alias
    casts: dict[str, str] = field(default_factory=dict)  # col -> SQL predicate true when the cast fails
    needs_key: bool = False  # bind tokenize.padded_keys(ws.token_key) at execution (kept out of here)


# -- small SQL builders ----------------------------------------------------------------


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _src(name: str) -> str:
    return f"src.{quote_ident(name)}"


def _cast(expr: str, t: ColumnType) -> str:
    if t == ColumnType.timestamp:
        return f"CAST(CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"
    return f"CAST({expr} AS {SQL_TYPES[t]})"


def _try_cast(expr: str, t: ColumnType) -> str:
    if t == ColumnType.timestamp:
        return f"TRY_CAST(TRY_CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"
    return f"TRY_CAST({expr} AS {SQL_TYPES[t]})"


def _masks(prefix: int, groups: int, bits: int) -> list[int]:
    """Per-group network masks for a prefix length (constants computed here, not in SQL)."""
    out = []
    full = (1 << bits) - 1
    for i in range(groups):
        keep = max(0, min(bits, prefix - bits * i))
        out.append((full << (bits - keep)) & full)
    return out


def ip_prefix_sql(expr: str, g: Generalize) -> str:
    """IPv4 → ``a.b.c.0/24``; IPv6 → ``2001:db8:1::/48`` (leading groups, then ``::``); else NULL.

    IPv4-mapped IPv6 (``::ffff:1.2.3.4``) is treated as IPv4. Pure SQL (no inet
    extension: nothing to download).
    """
    s = f"trim(CAST({expr} AS VARCHAR))"
    m4 = _masks(g.ipv4_prefix, 4, 8)
    v4 = lambda x: (  # noqa: E731
        f"array_to_string(list_transform(string_split({x}, '.'), "
        f"lambda o, i: CAST(CAST(o AS INTEGER) & {m4}[i] AS VARCHAR)), '.') || '/{g.ipv4_prefix}'"
    )
    m6 = _masks(g.ipv6_prefix, 8, 16)
    keep = max(1, -(-g.ipv6_prefix // 16))
    left = f"split_part({s}, '::', 1)"
    right = f"split_part({s}, '::', 2)"
    lg = f"CASE WHEN {left} = '' THEN []::VARCHAR[] ELSE string_split({left}, ':') END"
    rg = f"CASE WHEN {right} = '' THEN []::VARCHAR[] ELSE string_split({right}, ':') END"
    groups = (
        f"CASE WHEN contains({s}, '::') THEN list_concat({lg}, "
        f"list_transform(range(8 - len({lg}) - len({rg})), lambda z: '0'), {rg}) "
        f"ELSE string_split({s}, ':') END"
    )
    masked = (
        f"list_transform({groups}, lambda h, i: lower(printf('%x', CAST(('0x' || h) AS INTEGER) & {m6}[i])))"
    )
    tail = "'::'" if keep < 8 else "''"
    v6 = f"array_to_string(list_slice({masked}, 1, {keep}), ':') || {tail} || '/{g.ipv6_prefix}'"
    mapped = f"regexp_extract({s}, '^::[fF]{{4}}:({_IPV4_RE})$', 1)"
    return (
        f"CASE WHEN regexp_full_match({s}, {_lit(_IPV4_RE)}) THEN {v4(s)} "
        f"WHEN regexp_full_match({s}, {_lit('::[fF]{4}:' + _IPV4_RE)}) THEN {v4(mapped)} "
        f"WHEN regexp_full_match({s}, {_lit(_IPV6_RE)}) THEN {v6} ELSE NULL END"
    )


# Offline user-agent families: (regex, family) checked in order; clients before browsers.
UA_CLIENTS: tuple[tuple[str, str], ...] = (
    (r"(?i)bot|crawler|spider|slurp", "bot"),
    (r"(?i)^curl/", "curl"),
    (r"(?i)^wget/", "wget"),
    (r"(?i)python-requests|python-urllib|aiohttp|httpx", "python"),
    (r"(?i)go-http-client", "go"),
    (r"(?i)okhttp", "okhttp"),
    (r"(?i)^java/|apache-httpclient", "java"),
    (r"(?i)postmanruntime", "postman"),
)
UA_BROWSERS: tuple[tuple[str, str], ...] = (
    (r"Edg(e|A|iOS)?/", "Edge"),
    (r"OPR/|Opera", "Opera"),
    (r"SamsungBrowser/", "Samsung"),
    (r"Firefox/|FxiOS/", "Firefox"),
    (r"Chrome/|CriOS/|Chromium/", "Chrome"),
    (r"Safari/", "Safari"),
)
UA_OS: tuple[tuple[str, str], ...] = (
    (r"Android", "Android"),
    (r"iPhone|iPad|iPod|iOS", "iOS"),
    (r"Windows", "Windows"),
    (r"Mac OS X|Macintosh", "macOS"),
    (r"CrOS", "ChromeOS"),
    (r"Linux|X11", "Linux"),
)


def user_agent_sql(expr: str) -> str:
    """User-agent string → a coarse family (``Chrome/Windows``, ``curl``, ``other``)."""
    s = f"CAST({expr} AS VARCHAR)"
    clients = " ".join(f"WHEN regexp_matches({s}, {_lit(p)}) THEN {_lit(f)}" for p, f in UA_CLIENTS)
    browser = "CASE " + " ".join(f"WHEN regexp_matches({s}, {_lit(p)}) THEN {_lit(f)}" for p, f in UA_BROWSERS) + " END"
    os_ = "CASE " + " ".join(f"WHEN regexp_matches({s}, {_lit(p)}) THEN {_lit(f)}" for p, f in UA_OS) + " ELSE 'other' END"
    return (
        f"CASE WHEN {s} IS NULL THEN NULL {clients} "
        f"WHEN ({browser}) IS NOT NULL THEN ({browser}) || '/' || ({os_}) ELSE 'other' END"
    )


def user_agent_family(ua: str | None) -> str | None:
    """Python twin of :func:`user_agent_sql` (tests and docs)."""
    import re

    if ua is None:
        return None
    for p, f in UA_CLIENTS:
        if re.search(p, ua):
            return f
    b = next((f for p, f in UA_BROWSERS if re.search(p, ua)), None)
    if b is None:
        return "other"
    o = next((f for p, f in UA_OS if re.search(p, ua)), "other")
    return f"{b}/{o}"


def _generalize_sql(name: str, col: Column, params: dict) -> str:
    g = col.generalize
    src = _src(name)
    if g.kind == "ip_prefix":
        return ip_prefix_sql(src, g)
    if g.kind == "timestamp_bucket":
        p = f"pdbg_iv_{name}"
        params[p] = g.interval
        return f"time_bucket(CAST(${p} AS INTERVAL), {_cast(src, ColumnType.timestamp)})"
    if g.kind == "truncate":
        return f"left(CAST({src} AS VARCHAR), {int(g.length)})"
    if g.kind == "number_bucket":
        w = repr(float(g.width))
        bucket = f"(floor(CAST({src} AS DOUBLE) / {w}) * {w})"
        return f"CAST({bucket} AS BIGINT)" if col.type == ColumnType.integer and float(g.width).is_integer() else bucket
    if g.kind == "user_agent":
        return user_agent_sql(src)
    raise AssertionError(g.kind)  # the policy model allows no other kind


# -- the statement ---------------------------------------------------------------------


#: Transforms computed once per *distinct* value and joined back: ids, IPs and user agents
#: repeat heavily (the demo log has ~20 rows per user and ~50 user agents per million rows),
#: so hashing or parsing each distinct value once is several times faster than per row.
_DICTIONARY_KINDS = ("ip_prefix", "user_agent")


def _per_value(col: Column) -> bool:
    return col.transform == Transform.tokenize or (
        col.transform == Transform.generalize and col.generalize.kind in _DICTIONARY_KINDS
    )


def build(policy: DatasetPolicy, source_sql: str, source_columns: list[str], source_params: dict, *,
          source_name: str = "input") -> Minimization:
    """The minimizing SELECT over ``source_sql`` (a relation with ``source_columns``).

    Shape: ``WITH src AS MATERIALIZED (source), dictionaries per repeated-value column``,
    then a projection, then one level per detector stage (redaction runs only on values
    that a single combined pattern flags, ~one RE2 pass for the clean majority).
    Raises IngestError naming a kept policy column missing from the source.
    """
    present = set(source_columns)
    kept = policy.kept_columns
    missing = [n for n in kept if n not in present]
    if missing:
        raise IngestError(
            f"{source_name} has no column {', '.join(missing)} required by the policy of {policy.dataset}",
            "Add the column to the file, or mark it `transform: drop` in the policy.",
        )
    m = Minimization(sql="", params=dict(source_params))
    base: list[str] = []
    extra: list[str] = []
    # A blank privacy unit names nobody: it is NULL (a row without a unit, not kept), never the
    # token of "" that would lump every such row into one made-up unit.
    u = quote_ident(policy.privacy_unit)
    ctes = [f"src AS MATERIALIZED (SELECT * REPLACE (CASE WHEN trim(CAST({u} AS VARCHAR)) = '' THEN NULL "
            f"ELSE {u} END AS {u}) FROM ({source_sql}))"]
    joins: list[str] = []
    redacted: list[str] = []
    for i, (name, col) in enumerate(kept.items()):
        src = _src(name)
        if _per_value(col):
            d = f"__dict{i}"
            fn = tokenize.token_sql("v") if col.transform == Transform.tokenize else _generalize_sql_on(col, "v")
            ctes.append(f"{d} AS (SELECT v, {fn} AS t FROM (SELECT DISTINCT {src} AS v FROM src))")
            joins.append(f"LEFT JOIN {d} ON {src} = {d}.v")
            expr = f"{d}.t"
            if col.transform == Transform.tokenize:
                m.needs_key = True
            else:
                alias = f"__f__{name}"
                m.unparsed[name] = alias
                extra.append(f"({src} IS NOT NULL AND {expr} IS NULL) AS {quote_ident(alias)}")
        elif col.transform == Transform.keep:
            expr = _cast(src, col.type)
            m.casts[name] = f"({src} IS NOT NULL AND {_try_cast(src, col.type)} IS NULL)"
        elif col.transform == Transform.redact:
            expr = f"CAST({src} AS VARCHAR)"
            redacted.append(name)
        else:
            expr = _generalize_sql(name, col, m.params)
            if col.generalize.kind == "timestamp_bucket":
                m.casts[name] = f"({src} IS NOT NULL AND {_try_cast(src, ColumnType.timestamp)} IS NULL)"
            elif col.generalize.kind == "number_bucket":
                m.casts[name] = f"({src} IS NOT NULL AND TRY_CAST({src} AS DOUBLE) IS NULL)"
            else:  # truncate never fails
                pass
        base.append(f"{expr} AS {quote_ident(name)}")
        m.columns.append(name)
    for name in source_columns:
        if name in kept:
            continue
        if name not in policy.columns:
            m.unknown.append(name)
        alias = f"__d__{name}"
        m.dropped[name] = alias
        extra.append(f"({_src(name)} IS NOT NULL) AS {quote_ident(alias)}")
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(base + extra)} FROM src {' '.join(joins)}"
    if redacted:
        # Flag values any detector could touch; keep the original only for those (for counts).
        flags = ", ".join(
            f"coalesce(regexp_matches({quote_ident(n)}, {_lit(detectors.ANY_PATTERN)}), false) AS {quote_ident('__m__' + n)}"
            for n in redacted
        )
        sql = f"SELECT *, {flags} FROM ({sql})"
        origs = ", ".join(
            f"CASE WHEN {quote_ident('__m__' + n)} THEN {quote_ident(n)} END AS {quote_ident('__o__' + n)}"
            for n in redacted
        )
        sql = f"SELECT *, {origs} FROM ({sql})"
        for stage in detectors.redact_sql_stages("x"):
            repl = ", ".join(
                f"CASE WHEN {quote_ident('__m__' + n)} THEN {detectors.stage_sql(stage, quote_ident(n))} "
                f"ELSE {quote_ident(n)} END AS {quote_ident(n)}"
                for n in redacted
            )
            sql = f"SELECT * REPLACE ({repl}) FROM ({sql})"
        flags_out = ", ".join(quote_ident("__m__" + n) for n in redacted)
        sql = f"SELECT * EXCLUDE ({flags_out}) FROM ({sql})"
        for n in redacted:
            for d in detectors.NAMES:
                m.detector_hits[(n, d)] = detectors.count_sql(quote_ident("__o__" + n), quote_ident(n), d)
            m.originals[n] = "__o__" + n
    m.sql = sql
    return m


def _generalize_sql_on(col: Column, expr: str) -> str:
    if col.generalize.kind == "ip_prefix":
        return ip_prefix_sql(expr, col.generalize)
    return user_agent_sql(expr)


def target_types(policy: DatasetPolicy) -> dict[str, str]:
    return {n: output_type(policy, n) for n in policy.kept_columns}
