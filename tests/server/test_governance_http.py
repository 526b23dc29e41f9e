"""Through the broker: revocation ends history, replay and case views; the body limit counts real bytes."""

from __future__ import annotations

import asyncio
import socket

from pdbg.demo.build import APPROVER, INVESTIGATOR
from pdbg.server.app import _BodyLimit

from .helpers import assert_error_body


def test_revocation_ends_history_replay_and_case_views_over_http(http, demo, fresh_case, remote):
    from pdbg.governance import access

    case = fresh_case(0.5)
    r = remote(case).sql("SELECT COUNT(*) AS n FROM requests", epsilon=0.1)
    alice = http(INVESTIGATOR)
    assert alice.get("/v1/history", params={"case": case}).status_code == 200
    assert alice.get(f"/v1/oversight/cases/{case}").status_code == 200
    (grant,) = access.list_grants(demo.ws, user=INVESTIGATOR, case=case)
    access.revoke(demo.ws, grant.id, APPROVER)
    for resp in (alice.get("/v1/history", params={"case": case}),
                 alice.post("/v1/replay", json={"case": case, "release_id": r.release_id}),
                 alice.get(f"/v1/oversight/cases/{case}"),
                 alice.get(f"/v1/oversight/cases/{case}/impact"),
                 alice.get("/v1/oversight/grants", params={"case": case})):
        assert "revoked" in assert_error_body(resp, 403, "AccessDenied")["message"]
    assert http(APPROVER).get(f"/v1/oversight/cases/{case}").status_code == 200


def test_replay_of_an_unknown_release_is_403_without_access_404_with_it(http, fresh_case):
    case = fresh_case(0.5)
    body = {"case": "NOT-MINE", "release_id": "0" * 32}
    assert_error_body(http(INVESTIGATOR).post("/v1/replay", json=body), 403, "AccessDenied")
    assert_error_body(http(INVESTIGATOR).post("/v1/replay", json={**body, "case": case}), 404, "NotFound")


def _chunked_post(url: str, content_length: str | None, size: int) -> int:
    host, port = url.removeprefix("http://").split(":")
    head = ["POST /v1/query HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            "Transfer-Encoding: chunked"] + ([f"Content-Length: {content_length}"] if content_length else [])
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for _ in range(size // 4096):
                sock.sendall(b"1000\r\n" + b"x" * 4096 + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:          # the broker hung up after its 413: what the limit is for
            pass
        reply = sock.recv(4096)
    return int(reply.split(b" ", 2)[1])


def test_chunked_body_past_a_small_content_length_is_413(broker):
    assert _chunked_post(broker.url, "20", 256 * 1024) == 413
    assert _chunked_post(broker.url, None, 256 * 1024) == 413


def _drive(limit: int, chunks: list[bytes], headers=()):
    """Run _BodyLimit over ``chunks``; returns (status, receive calls, body the app saw)."""
    calls, seen, sent = 0, [], []

    async def receive():
        nonlocal calls
        calls += 1
        i = calls - 1
        if i < len(chunks):
            return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def app(scope, recv, snd):
        msg = await recv()
        seen.append(msg["body"])
        await snd({"type": "http.response.start", "status": 200, "headers": []})
        await snd({"type": "http.response.body", "body": b""})

    scope = {"type": "http", "method": "POST", "headers": list(headers)}
    asyncio.run(_BodyLimit(app, limit)(scope, receive, send))
    return sent[0]["status"], calls, b"".join(seen)


def test_body_limit_counts_received_bytes_and_stops_reading_at_once():
    status, calls, seen = _drive(100, [b"x" * 60] * 10, headers=[(b"content-length", b"5")])
    assert status == 413 and calls == 2 and seen == b""          # refused on the chunk that crossed the limit
    status, calls, seen = _drive(100, [b"x" * 60] * 10)
    assert status == 413 and calls == 2
    status, _, seen = _drive(100, [b"a" * 50, b"b" * 50])
    assert status == 200 and seen == b"a" * 50 + b"b" * 50      # at the limit: passed on whole
    status, calls, _ = _drive(100, [b"x"], headers=[(b"content-length", b"101")])
    assert status == 413 and calls == 0                          # a declared excess is refused unread
