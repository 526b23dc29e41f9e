"""Detectors: corpora per detector (true positives and known false positives), and the
SQL form agreeing with the Python form on the corpora and on generated mixtures."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdbg.ingest import detectors as D

from .corpus import FALSE_POSITIVES, TRUE_POSITIVES

TP = [(det, text, secret) for det, items in TRUE_POSITIVES.items() for text, secret in items]
FP = [(kind, text) for kind, items in FALSE_POSITIVES.items() for text in items]


@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    yield c
    c.close()


def sql_redact(con, text: str) -> str:
    return con.execute(f"SELECT {D.redact_sql('$t')}", {"t": text}).fetchone()[0]


def test_every_detector_has_a_corpus():
    assert set(TRUE_POSITIVES) == set(D.NAMES)


@pytest.mark.parametrize("det,text,secret", TP)
def test_true_positive_found_and_removed(con, det, text, secret):
    findings = D.scan_text(text)
    i = text.find(secret)
    assert any(f.detector == det and f.start <= i and i + len(secret) <= f.end for f in findings), findings
    red, counts = D.redact_text(text)
    assert secret not in red
    assert D.DETECTORS[D.NAMES.index(det)].placeholder in red
    assert counts.get(det, 0) >= 1
    assert sql_redact(con, text) == red


@pytest.mark.parametrize("kind,text", FP)
def test_known_false_positive_left_alone(con, kind, text):
    assert D.scan_text(text) == []
    assert D.redact_text(text) == (text, {})
    assert sql_redact(con, text) == text


def test_luhn():
    assert D.luhn_ok("4111 1111 1111 1111")
    assert D.luhn_ok("79927398713")
    assert not D.luhn_ok("4111111111111112")


def test_pem_hides_its_content_once():
    text = "-----BEGIN PRIVATE KEY-----\nalice@example.com 10.0.0.1\n-----END PRIVATE KEY----- and bob@x.io"
    red, counts = D.redact_text(text)
    assert red == "<PEM> and <EMAIL>"
    assert counts == {"pem": 1, "email": 1}
    assert [f.detector for f in D.scan_text(text)] == ["pem", "email"]


def test_scan_positions_are_in_original_coordinates():
    text = "a@b.io then 10.0.0.1 and token=abc"
    got = [(f.detector, text[f.start:f.end]) for f in D.scan_text(text)]
    assert got == [("email", "a@b.io"), ("ipv4", "10.0.0.1"), ("credential", "abc")]


def test_sql_counts_match_python_counts(con):
    texts = [t for _, t, _ in TP] + [t for _, t in FP]
    con.execute("CREATE OR REPLACE TEMP TABLE corpus(t VARCHAR)")
    con.executemany("INSERT INTO corpus VALUES (?)", [[t] for t in texts])
    red = D.redact_sql("t")
    cols = ", ".join(f"sum({D.count_sql('t', red, n)})" for n in D.NAMES)
    got = dict(zip(D.NAMES, con.execute(f"SELECT {cols} FROM corpus").fetchone()))
    want = dict.fromkeys(D.NAMES, 0)
    for t in texts:
        for k, v in D.redact_text(t)[1].items():
            want[k] += v
    assert got == want
    assert all(want[n] > 0 for n in D.NAMES)


_FRAGMENTS = [t for _, t, _ in TP] + [t for _, t in FP] + [" ", ",", ".", ":", "=", "@", "&", "?", "-", "<", ">"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=12)), max_size=6))
def test_sql_and_python_forms_agree(con, parts):
    text = "".join(parts)
    assert sql_redact(con, text) == D.redact_text(text)[0]


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80))
def test_redaction_is_idempotent_and_scan_agrees(text):
    red, counts = D.redact_text(text)
    assert D.redact_text(red)[0] == red
    assert sum(counts.values()) == len(D.scan_text(text))


def test_any_pattern_flags_every_true_positive():
    import re

    rx = re.compile(D.ANY_PATTERN, re.ASCII)
    assert all(rx.search(t) for _, t, _ in TP)
