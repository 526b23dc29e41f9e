"""Tokenization: SQL HMAC equals Python's hmac; deterministic per key; separated across keys."""

from __future__ import annotations

import hashlib
import hmac

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from pdbg.ingest.readers import READER_CONFIG
from pdbg.ingest import tokenize as T
from pdbg.policy.workspace import TokenKey

K1 = TokenKey("k-1", bytes(range(32)))
K2 = TokenKey("k-2", bytes(range(1, 33)))


def sql_tokens(key, values):
    con = duckdb.connect()
    con.execute("CREATE TABLE v(x VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [[x] for x in values])
    out = [r[0] for r in con.execute(f"SELECT {T.token_sql('x')} FROM v ORDER BY rowid", T.padded_keys(key)).fetchall()]
    con.close()
    return out


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.text(max_size=40), min_size=1, max_size=20))
def test_sql_matches_python_hmac(values):
    want = ["tk_" + hmac.new(K1.secret, v.encode(), hashlib.sha256).hexdigest()[:32] for v in values]
    assert sql_tokens(K1, values) == want


def test_deterministic_and_key_separated():
    a1 = sql_tokens(K1, ["user-1", "user-1", "user-2"])
    a2 = sql_tokens(K2, ["user-1"])
    assert a1[0] == a1[1] != a1[2]
    assert a2[0] != a1[0]
    assert all(len(t) == T.TOKEN_LENGTH and T.is_token(t) for t in a1 + a2)


def test_null_stays_null_and_long_keys():
    assert sql_tokens(K1, [None]) == [None]
    long = TokenKey("k-l", b"x" * 100)  # longer than a block: hashed first, as RFC 2104 says
    assert sql_tokens(long, ["a"]) == [T.tokenize_value(long, "a")]


def test_key_is_bound_not_in_sql_text():
    sql = T.token_sql("x")
    assert K1.secret.hex() not in sql and "$" + T.IPAD_PARAM in sql
    assert "secret=<redacted>" in repr(K1)


def test_two_workspaces_tokenize_differently(tmp_path):
    from pdbg.ingest import datasets, load
    from pdbg.policy.model import load_policy
    from pdbg.policy.workspace import create_layout

    from .conftest import POLICY, raw_rows, write_jsonl

    f = write_jsonl(tmp_path / "r.jsonl", raw_rows())
    toks = []
    for name in ("a", "b"):
        ws = create_layout(tmp_path / name, audit_mirror=tmp_path / f"m{name}")
        datasets.register(ws, load_policy(POLICY))
        load.ingest(ws, "requests", [f])
        con = duckdb.connect(str(ws.data_path), read_only=True, config=dict(READER_CONFIG))  # the config pdbg readers share
        toks.append(set(r[0] for r in con.execute("SELECT user_id FROM requests").fetchall()))
        con.close()
    assert len(toks[0]) == 2 and toks[0].isdisjoint(toks[1])
