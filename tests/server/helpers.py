"""Helpers shared by the server tests: start a real broker, check a refusal's shape."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Broker:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_broker(ws_root, log_path: Path, *extra: str, max_open_files: int | None = None) -> Broker:
    """Start `pdbg serve WS` and wait until /v1/health answers (or fail with its log).

    ``max_open_files`` caps the broker's file descriptors (soft and hard), as on a host with a
    low `ulimit -n`, where too many connections make accept() fail."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PDBG_TOKEN", "PDBG_AUDIT_MIRROR")}
    cmd = [sys.executable, "-c", "from pdbg.cli.main import entry; entry()", "serve", str(ws_root),
           "--host", "127.0.0.1", "--port", str(port), *extra]
    log_file = open(log_path, "wb")
    def limit_files():
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                            preexec_fn=limit_files if max_open_files else None)
    log_file.close()
    broker = Broker(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pdbg serve exited with {proc.returncode}:\n{broker.log()}")
        try:
            if httpx.get(broker.url + "/v1/health", timeout=1).status_code == 200:
                return broker
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    broker.stop()
    raise RuntimeError(f"pdbg serve did not become healthy in 30 s:\n{broker.log()}")


def assert_error_body(resp: httpx.Response, status: int, error: str | None = None) -> dict:
    """Every refusal: the status, and a JSON body with error / message / hint."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert {"error", "message", "hint"} <= set(body), body
    assert body["message"] and body["hint"]
    if error:
        assert body["error"] == error, body
    return body
