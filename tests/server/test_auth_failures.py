"""Failed authentications are audited (never the token) and rate-limited (issue 13, item 7).

In process, with a limiter on a hand-driven clock, so windows are deterministic; the shared
demo workspace's audit log is read back, filtered to the names each test uses.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from pdbg.demo.build import DEMO_CASE, INVESTIGATOR

from .helpers import assert_error_body

_names = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _broker(demo, **limits):
    from pdbg.governance.principals import FailedAuthLimiter
    from pdbg.server.app import create_app

    clock = Clock()
    app = create_app(demo.ws, auth_limiter=FailedAuthLimiter(clock=clock, **limits))

    def get(headers: dict, client=("10.1.2.3", 5000), n: int = 1) -> list[httpx.Response]:
        async def go():
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://broker", headers=headers) as c:
                return [await c.get("/v1/budget", params={"case": DEMO_CASE}) for _ in range(n)]

        return asyncio.run(go())

    return get, clock


def _records(demo, **match) -> list[dict]:
    from pdbg.ledger.audit import AuditLog

    return [r for r in AuditLog(demo.ws).records()
            if r["action"].startswith("auth.") and all(r.get(k) == v for k, v in match.items())]


def _raw_audit(demo) -> str:
    return (demo.ws.root / "audit" / "audit.jsonl").read_text()


def test_a_wrong_token_is_audited_with_the_claimed_name_never_the_token(demo):
    get, _ = _broker(demo)
    source = f"10.9.0.{next(_names)}"
    wrong = "pdbg_ThisIsAWrongTokenOfGoodLength0123456789ab"
    (r,) = get({"Authorization": f"Bearer {wrong}", "X-Pdbg-User": INVESTIGATOR}, client=(source, 1))
    assert_error_body(r, 401, "AccessDenied")
    (rec,) = _records(demo, source=source)
    assert rec["action"] == "auth.failed" and rec["user"] == INVESTIGATOR and rec["reason"] == "wrong-token"
    assert rec["severity"] == "warning"
    assert wrong not in _raw_audit(demo)


@pytest.mark.parametrize("headers,reason", [
    ({"X-Pdbg-User": "nobody-{n}"}, "missing-credentials"),
    ({"Authorization": "Bearer pdbg_x", "X-Pdbg-User": "os:root"}, "owner-over-http"),
    ({"Authorization": "Bearer pdbg_x", "X-Pdbg-User": "Not A Name {n}"}, "malformed-name"),
    ({"Authorization": "Bearer pdbg_x", "X-Pdbg-User": "ghost-{n}"}, "unknown-user"),
], ids=["no-token", "owner", "malformed", "unknown"])
def test_every_kind_of_failure_is_audited_with_a_fixed_reason(demo, headers, reason):
    get, _ = _broker(demo)
    n = next(_names)
    source = f"10.8.0.{n}"
    (r,) = get({k: v.format(n=n) for k, v in headers.items()}, client=(source, 1))
    assert r.status_code == 401
    (rec,) = _records(demo, source=source)
    assert rec["reason"] == reason
    if reason in ("owner-over-http", "malformed-name"):
        assert rec["user"] is None                     # only valid user names are recorded


def test_a_token_pasted_into_the_user_header_is_not_recorded(demo, tokens):
    get, _ = _broker(demo)
    source = f"10.7.0.{next(_names)}"
    lowered = "pdbg_" + "q" * 40                       # even one that happens to look like a user name
    get({"Authorization": f"Bearer {tokens[INVESTIGATOR]}", "X-Pdbg-User": tokens[INVESTIGATOR]}, client=(source, 1))
    get({"Authorization": "Bearer x", "X-Pdbg-User": lowered}, client=(source, 1))
    recs = _records(demo, source=source)
    assert len(recs) == 2 and all(r["user"] is None for r in recs)
    raw = _raw_audit(demo)
    assert tokens[INVESTIGATOR] not in raw and lowered not in raw


def test_audit_records_per_user_and_address_are_capped_then_summarized(demo):
    get, clock = _broker(demo, audit_per_key=5, max_failures=1000)
    name, source = f"mallory-{next(_names)}", "10.6.0.1"
    get({"Authorization": "Bearer pdbg_guess", "X-Pdbg-User": name}, client=(source, 1), n=60)
    recs = _records(demo, user=name)
    assert [r["action"] for r in recs] == ["auth.failed"] * 5 + ["auth.throttled"]
    clock.t += 61
    get({"Authorization": "Bearer pdbg_guess", "X-Pdbg-User": name}, client=(source, 1))
    last = _records(demo, user=name)[-1]
    assert last["action"] == "auth.failed" and last["unrecorded_before"] == 55


def test_rotating_names_cannot_flood_the_audit_log(demo):
    get, _ = _broker(demo, audit_total=20)
    prefix = f"rot{next(_names)}-"
    for i in range(120):
        get({"Authorization": "Bearer pdbg_guess", "X-Pdbg-User": f"{prefix}{i}"}, client=(f"10.5.{i}.1", 1))
    recs = [r for r in _records(demo) if (r.get("user") or "").startswith(prefix) or r.get("scope") == "all"]
    mine = [r for r in recs if (r.get("user") or "").startswith(prefix)]
    assert len(mine) == 20
    assert any(r["action"] == "auth.throttled" and r.get("scope") == "all" for r in _records(demo))


def test_too_many_failures_answer_429_with_retry_after_even_for_the_right_token(demo, tokens):
    get, clock = _broker(demo, max_failures=3)
    good = {"Authorization": f"Bearer {tokens[INVESTIGATOR]}", "X-Pdbg-User": INVESTIGATOR}
    bad = {"Authorization": "Bearer pdbg_guess", "X-Pdbg-User": INVESTIGATOR}
    source = ("10.4.0.1", 1)
    assert [r.status_code for r in get(bad, client=source, n=3)] == [401, 401, 401]
    limited = get(bad, client=source)[0]
    body = assert_error_body(limited, 429, "RateLimited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60 and "Wait" in body["hint"]
    assert get(good, client=source)[0].status_code == 429   # the answer says nothing about the token
    assert get(good, client=("10.4.0.2", 1))[0].status_code == 200   # the user elsewhere is not locked out
    clock.t += 61
    assert get(good, client=source)[0].status_code == 200


def test_missing_credentials_are_never_429(demo):
    """Without a claimed user there is no one to rate-limit: always the generic 401."""
    get, _ = _broker(demo, max_failures=2)
    assert {r.status_code for r in get({}, client=("10.3.0.1", 1), n=5)} == {401}
