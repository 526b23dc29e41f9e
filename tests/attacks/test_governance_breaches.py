"""Governance breaches found by the outside review (issue 12, item 5), as a hostile investigator
with an ordinary grant would run them.

1. Break-glass on a case one is not attached to, repeatedly, then reading that case's history,
   replays and cached answers.
2. History and replay after revocation; a past grant reading releases made after it ended.
3. One person in two roles: an admin mints an investigator account and approves its request.
4. A chunked request body larger than the broker's limit, declared with a small Content-Length.

Defences: ``pdbg.governance.breakglass`` (attachment, one active grant, rolling cap),
``pdbg.governance.case_access`` (one decision for history, replay, oversight), the creator
rule in ``principals.authorize``, and ``_BodyLimit`` counting the bytes actually received.
Each test would pass the attack through without its defence (checked by reverting the fix).
"""

from __future__ import annotations

import socket
import threading
import time
import attack_support as S
import pytest

from pdbg.errors import AccessDenied

COUNT = "SELECT COUNT(*) AS n FROM t"


def _rows(n: int = 60):
    return [S.row(f"u{i}") for i in range(n)]


def _owner():
    from pdbg.governance import principals

    return principals.os_actor()


def _investigator(ws, name: str) -> str:
    from pdbg.governance import principals

    if principals.get_user(ws, name) is None:
        principals.add_user(ws, _owner(), name, "investigator")
    return name


def _grant(ws, user: str, case: str, epsilon: float = 1.0, hours: float = 4, approver: str = "bob"):
    from pdbg.governance import access

    req = access.request(ws, user, case, "t", epsilon, hours, "attack regression")
    return access.approve(ws, req.id, approver)


def _refusals(ws, attempted: str) -> list[dict]:
    from pdbg.ledger.audit import AuditLog

    return [r for r in AuditLog(ws).records() if r["action"] == "authz.denied" and r.get("attempted") == attempted]


# -- 1. break-glass ------------------------------------------------------------------------------

def test_break_glass_on_a_case_one_is_not_attached_to_is_refused(make_ws, frozen_clock):
    """Mallory holds no grant on INC-1 and is not a member: breaking glass there must not give her
    the case's cached answers, history or replays."""
    from pdbg.governance import access
    from pdbg.session import Session

    ws, _ = make_ws(_rows())
    alice, case = S.add_investigator(ws, case="INC-1")
    released = Session(ws, user=alice, case=case).sql(COUNT, epsilon=0.5)
    mallory = _investigator(ws, "mallory")
    with pytest.raises(AccessDenied) as err:
        access.break_glass(ws, mallory, case, "t", "prod is down, approvers asleep")
    assert err.value.hint and "member" in err.value.message
    assert access.list_grants(ws, user=mallory) == []
    assert _refusals(ws, "access.break_glass"), "the refused break-glass is audited"
    s = Session(ws, user=mallory, case=case)
    with pytest.raises(AccessDenied):
        s.sql(COUNT, epsilon=0.5)                     # no cached answer from alice's release
    with pytest.raises(AccessDenied):
        s.history()
    with pytest.raises(AccessDenied):
        s.replay(released.release_id)


def test_break_glass_is_one_at_a_time_and_capped_per_30_days(make_ws, frozen_clock):
    """Alice is attached (she holds an approved grant on the case); she still cannot stack
    break-glass grants, nor renew one every four hours without limit."""
    from pdbg.governance import access

    ws, policy = make_ws(_rows())
    alice, case = S.add_investigator(ws, case="INC-1")
    first = access.break_glass(ws, alice, case, "t", "outage")
    with pytest.raises(AccessDenied, match="active break-glass") as err:
        access.break_glass(ws, alice, case, "t", "outage, again")
    assert err.value.hint
    grants = [first]
    for _ in range(2):
        frozen_clock.advance(hours=access.BREAK_GLASS_HOURS)
        grants.append(access.break_glass(ws, alice, case, "t", "still down"))
    frozen_clock.advance(hours=access.BREAK_GLASS_HOURS)
    with pytest.raises(AccessDenied, match="30 days") as err:
        access.break_glass(ws, alice, case, "t", "one more")
    assert err.value.hint
    assert len([g for g in access.list_grants(ws, user=alice) if g.kind == "break_glass"]) == 3
    assert len(_refusals(ws, "access.break_glass")) == 2
    frozen_clock.advance(days=30)                     # rolling: the oldest leaves the window
    assert access.break_glass(ws, alice, case, "t", "new incident wave").kind == "break_glass"
    assert policy.break_glass_limit == 3              # the default of the policy field


# -- 2. history, replay and oversight need a live grant -------------------------------------------

def test_revocation_ends_history_replay_and_oversight_at_once(make_ws, frozen_clock):
    from pdbg.governance import access
    from pdbg.governance.oversight import Oversight
    from pdbg.session import Session

    ws, _ = make_ws(_rows())
    alice, case = S.add_investigator(ws, case="INC-1")
    s = Session(ws, user=alice, case=case)
    r = s.sql(COUNT, epsilon=0.5)
    ov = Oversight(ws, alice)
    assert s.history() and ov.case(case)["case"] == case
    (grant,) = access.list_grants(ws, user=alice)
    access.revoke(ws, grant.id, "bob")
    with pytest.raises(AccessDenied, match="revoked"):
        s.history()
    with pytest.raises(AccessDenied, match="revoked"):
        s.replay(r.release_id)
    with pytest.raises(AccessDenied):
        ov.case(case)
    with pytest.raises(AccessDenied):
        ov.privacy_impact(case)
    with pytest.raises(AccessDenied):
        ov.grants(case)
    with pytest.raises(AccessDenied):
        s.sql(COUNT, epsilon=0.5)                     # the cache hit is gone too


def test_an_old_unrevoked_grant_does_not_reopen_releases_made_under_a_revoked_one(make_ws, frozen_clock):
    """Before: replay refused only when *all* grants were revoked, so an expired grant from
    last week kept every later (revoked) release replayable."""
    from pdbg.governance import access
    from pdbg.session import Session

    ws, _ = make_ws(_rows())
    alice, case = S.add_investigator(ws, case="INC-1")          # grant g0, 4 h
    s = Session(ws, user=alice, case=case)
    old = s.sql(COUNT, epsilon=0.2)
    frozen_clock.advance(hours=5)                               # g0 expired, never revoked
    g1 = _grant(ws, alice, case)
    new = s.sql(COUNT, epsilon=0.3)
    access.revoke(ws, g1.id, "bob")
    with pytest.raises(AccessDenied):
        s.replay(new.release_id)
    assert [h["release_id"] for h in s.history() if h["action"] == "query"] == [old.release_id]
    assert s.replay(old.release_id).df.equals(old.df)          # the postmortem of g0's work still runs


def test_a_past_grant_shows_only_releases_made_while_it_was_active(make_ws, frozen_clock):
    from pdbg.governance.oversight import Oversight
    from pdbg.session import Session

    ws, _ = make_ws(_rows())
    alice, case = S.add_investigator(ws, case="INC-1")
    mine = Session(ws, user=alice, case=case).sql(COUNT, epsilon=0.2)
    frozen_clock.advance(hours=5)                               # alice's grant expired
    dave = _investigator(ws, "dave")
    _grant(ws, dave, case)
    theirs = Session(ws, user=dave, case=case).sql("SELECT service, COUNT(*) AS n FROM t GROUP BY service",
                                                    epsilon=0.3)
    s = Session(ws, user=alice, case=case)
    seen = [h["release_id"] for h in s.history() if h["action"] == "query"]
    assert seen == [mine.release_id]
    with pytest.raises(AccessDenied):
        s.replay(theirs.release_id)
    assert s.replay(mine.release_id).df.equals(mine.df)
    assert Oversight(ws, alice).case(case)["case"] == case      # her own case record stays readable
    assert Oversight(ws, "bob").case(case)["case"] == case      # overseers keep their views


# -- 3. one person, two roles -------------------------------------------------------------------

def test_admin_cannot_approve_a_request_from_an_account_they_created(make_ws, frozen_clock):
    from pdbg.governance import access, cases, principals

    ws, _ = make_ws(_rows())
    principals.add_user(ws, _owner(), "root", "admin")
    principals.add_user(ws, _owner(), "bob", "approver")
    principals.add_user(ws, "root", "sock", "investigator")    # root mints an investigator …
    cases.open_case(ws, "bob", "INC-9", "two hats")
    req = access.request(ws, "sock", "INC-9", "t", 1.0, 4, "looks routine")
    with pytest.raises(AccessDenied, match="created") as err:  # … and may not approve its request
        access.approve(ws, req.id, "root")
    assert err.value.hint
    assert access.list_grants(ws) == [] and _refusals(ws, "access.approve")
    assert access.approve(ws, req.id, "bob").approved_by == "bob"   # someone independent may


# -- 4. the broker's body limit -----------------------------------------------------------------

@pytest.fixture
def small_broker(make_ws):
    """A real uvicorn server on 127.0.0.1 over a small workspace, body limit 4 KiB."""
    import uvicorn

    from pdbg.server.app import create_app

    ws, _ = make_ws(_rows(5))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ws, max_body_bytes=4096), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield port
    server.should_exit = True
    thread.join(10)


def _raw_post(port: int, headers: list[str], chunks: list[bytes]) -> tuple[int, int]:
    """POST /v1/query with a chunked body; returns (status, body bytes the server let us send)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = "\r\n".join(["POST /v1/query HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
                            "Transfer-Encoding: chunked", *headers]) + "\r\n\r\n"
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:            # the server closed early: exactly what a limit should do
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                more = sock.recv(4096)
                if not more:
                    break
                data += more
        except OSError:
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, sent


@pytest.mark.parametrize("declared", [None, "10"], ids=["no-content-length", "too-small-content-length"])
def test_chunked_body_over_the_limit_is_refused_413(small_broker, declared):
    body = b'{"case": "INC-1", "sql": "' + b"x" * 64 * 1024 + b'"}'
    chunks = [body[i:i + 1024] for i in range(0, len(body), 1024)]
    headers = [] if declared is None else [f"Content-Length: {declared}"]
    status, _ = _raw_post(small_broker, headers, chunks)
    assert status == 413


def test_chunked_body_under_the_limit_still_reaches_the_app(small_broker):
    status, _ = _raw_post(small_broker, [], [b'{"case": "INC-1",', b' "sql": "SELECT 1"}'])
    assert status == 401                               # read in full, then refused for lack of a token



# -- defences off: the attacks above are real ----------------------------------------------------

def test_without_the_break_glass_limits_an_outsider_reads_the_case(make_ws, frozen_clock, monkeypatch):
    """Defence off: with ``breakglass.refusal`` answering "allowed", Mallory breaks glass on a
    case she has nothing to do with and gets Alice's release from the cache, again and again."""
    from pdbg.governance import access, breakglass
    from pdbg.session import Session

    ws, _ = make_ws(_rows())
    alice, case = S.add_investigator(ws, case="INC-1")
    released = Session(ws, user=alice, case=case).sql(COUNT, epsilon=0.5)
    monkeypatch.setattr(breakglass, "refusal", lambda *a, **k: None)
    mallory = _investigator(ws, "mallory")
    for _ in range(5):
        access.break_glass(ws, mallory, case, "t", "curious")
    hit = Session(ws, user=mallory, case=case).sql(COUNT, epsilon=0.5)
    assert hit.cached and hit.df.equals(released.df)


def test_without_case_access_revocation_leaves_history_and_replay_open(make_ws, frozen_clock, monkeypatch):
    """Defence off: if ``case_access`` treated everyone as an overseer, a revoked investigator
    would keep the case's history and replays."""
    from pdbg.governance import access, case_access
    from pdbg.session import Session

    ws, _ = make_ws(_rows())
    alice, case = S.add_investigator(ws, case="INC-1")
    s = Session(ws, user=alice, case=case)
    r = s.sql(COUNT, epsilon=0.5)
    (grant,) = access.list_grants(ws, user=alice)
    access.revoke(ws, grant.id, "bob")
    monkeypatch.setattr(case_access, "case_access",
                        lambda ws, user, case, dataset=None: case_access.CaseAccess(user, case, overseer=True))
    assert s.history() and s.replay(r.release_id).df.equals(r.df)
