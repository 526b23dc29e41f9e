"""The demo generator: reproducible, realistic, with a visible incident and known PII content.

Other layers rely on these guarantees: ingest tests scan for the PII kinds counted here, the demo
investigation relies on the incident being in the data, and the policy's public domains must list
every dimension value the generator can emit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from pdbg.demo import generate as G
from pdbg.demo.generate import (
    DEMO_INCIDENT,
    PII_KINDS,
    PII_RATES,
    SCHEMA,
    Incident,
    generate,
    iter_batches,
    write,
)

N = 60_000


@pytest.fixture(scope="module")
def data() -> G.DemoData:
    return generate(N, seed=11)


@pytest.fixture(scope="module")
def con(data):
    c = duckdb.connect()
    c.register("r", data.table)
    yield c
    c.close()


def test_deterministic_for_a_seed():
    a, b = generate(5_000, seed=3), generate(5_000, seed=3)
    assert a.table.equals(b.table)
    assert a.truth == b.truth and a.pii_counts == b.pii_counts
    c = generate(5_000, seed=4)
    assert not a.table.equals(c.table)


def test_schema_order_and_types(data, con):
    t = data.table
    assert t.schema == SCHEMA
    assert t.num_rows == N
    for col in ("ts", "user_id", "session_id", "service", "endpoint", "region", "status", "latency_ms",
                "bytes_out", "user_agent", "client_ip", "message", "email"):
        assert t.column(col).null_count == 0, col
    (unsorted,) = con.execute("SELECT count(*) FROM (SELECT ts < lag(ts) OVER () AS bad FROM r) WHERE bad").fetchone()
    assert unsorted == 0
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM r").fetchone()
    assert lo >= datetime(2026, 11, 20, 12, 0) and hi < datetime(2026, 11, 20, 16, 0)
    assert re.fullmatch(r"user-\d+", t.column("user_id")[0].as_py())
    assert re.fullmatch(r"[0-9a-f]{16}", t.column("session_id")[0].as_py())
    # error_code is set exactly for 4xx/5xx
    (bad,) = con.execute("SELECT count(*) FROM r WHERE (status >= 400) <> (error_code IS NOT NULL)").fetchone()
    assert bad == 0
    (neg,) = con.execute("SELECT count(*) FROM r WHERE latency_ms <= 0 OR bytes_out < 0").fetchone()
    assert neg == 0


def test_batches_concatenate_to_generate():
    truth, batches = iter_batches(30_000, seed=5, chunk_rows=7_000)
    parts = list(batches)
    assert len(parts) >= 4
    whole = pa.concat_tables(parts)
    assert whole.num_rows == 30_000
    ts = whole.column("ts").to_pylist()
    assert ts == sorted(ts)
    assert truth == generate(30_000, seed=5).truth
    # with the default chunk size, iter_batches IS generate
    _, default = iter_batches(30_000, seed=5)
    assert pa.concat_tables(list(default)).equals(generate(30_000, seed=5).table)


def test_incident_is_visible_in_exact_aggregates():
    d = generate(100_000, seed=1, incident=DEMO_INCIDENT)
    t = d.truth
    assert (t.service, t.region, t.start) == (DEMO_INCIDENT.service, DEMO_INCIDENT.region, DEMO_INCIDENT.start)
    c = duckdb.connect()
    c.register("r", d.table)
    q = """SELECT avg((status >= 500)::INT), median(latency_ms) FROM r
           WHERE service = $s AND region = $g AND ts >= $lo AND ts < $hi"""
    s0, s1 = t.start_naive, t.end_naive
    before = c.execute(q, dict(s=t.service, g=t.region, lo=s0 - timedelta(minutes=60), hi=s0)).fetchone()
    during = c.execute(q, dict(s=t.service, g=t.region, lo=s0, hi=s1)).fetchone()
    assert before[0] < 0.03 and during[0] > 0.35
    assert during[1] > 3 * before[1]
    # the jump happens at the start minute: the minute before is quiet, the first minutes are not
    first = c.execute(q, dict(s=t.service, g=t.region, lo=s0, hi=s0 + timedelta(minutes=5))).fetchone()[0]
    last_quiet = c.execute(q, dict(s=t.service, g=t.region, lo=s0 - timedelta(minutes=5), hi=s0)).fetchone()[0]
    assert first > 0.25 and last_quiet < 0.05
    # other cells are unaffected
    (other,) = c.execute("SELECT avg((status >= 500)::INT) FROM r WHERE NOT (service = $s AND region = $g)",
                         dict(s=t.service, g=t.region)).fetchone()
    assert other < 0.02
    # the incident's new error code exists only inside the incident
    (outside,) = c.execute("SELECT count(*) FROM r WHERE error_code = $e AND NOT (service = $s AND region = $g "
                           "AND ts >= $lo AND ts < $hi)",
                           dict(e=t.error_code, s=t.service, g=t.region, lo=s0, hi=s1)).fetchone()
    assert outside == 0


def test_random_incidents_differ_and_stay_inside_the_window():
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    truths = [generate(2_000, seed=s).truth for s in range(40)]
    assert len({(t.service, t.region) for t in truths}) >= 15
    assert len({t.start for t in truths}) >= 25
    for t in truths:
        assert t.start.second == 0 and t.start.microsecond == 0
        assert start + timedelta(minutes=30) <= t.start
        assert t.end <= start + timedelta(hours=4) - timedelta(minutes=20)
        assert 45 <= t.minutes <= 90


def test_incident_validation():
    with pytest.raises(ValueError):
        generate(100, seed=1, incident=Incident("nope", "eu-west", datetime(2026, 11, 20, 13, tzinfo=UTC)))
    with pytest.raises(ValueError):
        generate(100, seed=1, incident=Incident("auth", "mars", datetime(2026, 11, 20, 13, tzinfo=UTC)))


def test_users_are_skewed(data, con):
    n_users, top1, median, top = con.execute("""
        WITH u AS (SELECT user_id, count(*) AS c FROM r GROUP BY 1)
        SELECT count(*), (SELECT sum(c) FROM (SELECT c FROM u ORDER BY c DESC LIMIT (SELECT count(*) // 100 FROM u))),
               median(c), max(c) FROM u""").fetchone()
    assert 0.7 * N / 20 <= n_users <= N / 20
    assert top1 / N > 0.08            # the top 1 % of users send a large share (~20 % at 10k users)
    assert median <= 15               # most users send a handful
    assert top > 20 * median          # and a few are automated clients


def test_pii_content_at_known_rates(data, con):
    patterns = {
        "email": r"sent to [a-z0-9.]+@[a-z.]+\.[a-z]+",
        "ipv4": r"(forwarded_for=|peer )\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
        "ipv6": r"(client 2a02:[0-9a-f:]+|from \[2001:[0-9a-f:]+\])",
        "phone": r"(\+1-\d{3}-555-\d{4}|\+44 20 \d{4} \d{4}|phone=\(\d{3}\) \d{3}-\d{4}|\+49 30 \d{8})",
        "card": r"card[= ][0-9][0-9 -]{13,20}[0-9]",
        "jwt": r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+",
        "bearer": r"(Bearer [A-Za-z0-9]{40}|api_key=[A-Za-z0-9]{32})",
        "aws_key": r"AKIA[A-Z0-9]{16}",
        "url_userinfo": r"://[A-Za-z0-9_]+:[A-Za-z0-9]+@",
        "url_secret": r"[?&](access_)?token=[A-Za-z0-9]{32}",
        "pem": r"-----BEGIN PRIVATE KEY-----",
    }
    assert set(patterns) == set(PII_KINDS)
    for kind, pat in patterns.items():
        (n,) = con.execute("SELECT count(*) FROM r WHERE regexp_matches(message, $p)", dict(p=pat)).fetchone()
        assert n == data.pii_counts[kind], kind
        expected = PII_RATES[kind] * N
        assert abs(n - expected) <= 5 * expected**0.5 + 2, kind
    # every card number in a message passes Luhn; every benign trace id fails it
    cards = [re.sub(r"\D", "", m) for (m,) in con.execute(
        "SELECT regexp_extract(message, 'card[= ]([0-9][0-9 -]{13,20}[0-9])', 1) FROM r "
        "WHERE regexp_matches(message, 'card[= ][0-9]')").fetchall()]
    assert cards and all(G._luhn_ok(c) and len(c) in (15, 16) for c in cards)
    traces = [m for (m,) in con.execute(
        "SELECT regexp_extract(message, 'trace_id=([0-9]+)', 1) FROM r WHERE message LIKE '%trace_id=%'").fetchall()]
    assert traces and not any(G._luhn_ok(t) for t in traces)
    # benign look-alikes are present too (UUIDs, ISO timestamps, versions)
    for pat in (r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}",
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r"v\d+\.\d+\.\d+"):
        (n,) = con.execute("SELECT count(*) FROM r WHERE regexp_matches(message, $p)", dict(p=pat)).fetchone()
        assert n > 0.01 * N, pat


def test_raw_identifying_columns_look_raw(data, con):
    (v6,) = con.execute("SELECT avg(contains(client_ip, ':')::INT) FROM r").fetchone()
    assert 0.03 < v6 < 0.4
    (uas,) = con.execute("SELECT count(DISTINCT user_agent) FROM r").fetchone()
    assert uas >= 40
    for needle in ("Chrome/", "Firefox/", "Safari/", "ShopApp/", "curl/", "python-requests/"):
        (n,) = con.execute("SELECT count(*) FROM r WHERE contains(user_agent, $n)", dict(n=needle)).fetchone()
        assert n > 0, needle
    (dbg,) = con.execute("SELECT count(*) FROM r WHERE debug_headers LIKE '%x-forwarded-for%'").fetchone()
    assert dbg > 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_write_round_trips(tmp_path, fmt):
    d = generate(2_000, seed=2)
    path = write(d.table, tmp_path / f"rows.{fmt}")
    reader = {"jsonl": "read_json_auto", "csv": "read_csv_auto", "parquet": "read_parquet"}[fmt]
    c = duckdb.connect()
    n, users, pem = c.execute(
        f"SELECT count(*), count(DISTINCT user_id), count(*) FILTER (WHERE message LIKE '%BEGIN PRIVATE KEY%') "
        f"FROM {reader}(?)", [str(path)]).fetchone()
    assert n == 2_000
    assert users == len(set(d.table.column("user_id").to_pylist()))
    assert pem == d.pii_counts["pem"]
    cols = [r[0] for r in c.execute(f"DESCRIBE SELECT * FROM {reader}(?)", [str(path)]).fetchall()]
    assert cols == SCHEMA.names
