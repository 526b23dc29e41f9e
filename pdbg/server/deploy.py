"""Start-up checks for `pdbg serve`: say plainly when the deployment undoes the broker's protection.

The broker only enforces anything if investigators cannot read the workspace
themselves (docs/DEPLOYMENT.md). These checks are warnings, not refusals: a
developer on a laptop may legitimately run everything as one user.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path


def startup_warnings(workspace: str | os.PathLike, host: str) -> list[str]:
    out = []
    root = Path(workspace)
    try:
        mode = stat.S_IMODE(root.stat().st_mode)
    except OSError:
        mode = 0
    if mode & 0o077:
        out.append(f"{root} is mode {mode:04o}: other OS users can read the workspace around the broker; "
                   f"`chmod 0700 {root}` as the broker's own user")
    if not _is_loopback(host):
        out.append(f"binding {host}: the broker speaks plain HTTP and tokens travel in headers; "
                   "bind 127.0.0.1 and terminate TLS in a reverse proxy")
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
