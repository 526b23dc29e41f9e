"""Fixtures for the dp/ tests, including the deterministic noise hook.

``noise`` replaces :func:`pdbg.dp.noise._opendp_sample` — the single function through
which every privacy-relevant random draw in pdbg goes — for the duration of one test
(DESIGN.md invariant 8). Production code has no way to do this: there is no seed, no
flag, no environment variable; only this monkeypatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pytest

import pdbg.dp.noise as noise_mod


@dataclass
class DeterministicNoise:
    """Controls the fake sampler.

    ``offset``: added to every noised integer (an int, or a callable ``(op, scale, i) -> int``).
    ``pick``: for selections, a callable ``(scores) -> index``; default: the exact argmin.
    ``calls``: every (op, scale, n_values) seen, to assert what was noised.
    """

    offset: int | Callable[[str, float, int], int] = 0
    pick: Callable[[list[int]], int] | None = None
    calls: list[tuple[str, float, int]] = field(default_factory=list)

    def __call__(self, op: str, scale: float, values: list[int]) -> list[int]:
        self.calls.append((op, scale, len(values)))
        if op in ("gaussian", "laplace"):
            if callable(self.offset):
                return [v + int(self.offset(op, scale, i)) for i, v in enumerate(values)]
            return [v + int(self.offset) for v in values]
        if self.pick is not None:
            return [int(self.pick(list(values)))]
        return [min(range(len(values)), key=values.__getitem__)]


@pytest.fixture
def noise(monkeypatch) -> DeterministicNoise:
    fake = DeterministicNoise()
    monkeypatch.setattr(noise_mod, "_opendp_sample", fake)
    return fake
