"""RFC 6962 (Certificate Transparency) Merkle tree hashes.

Why RFC 6962 and not a home-made tree: its tree heads have public test vectors and
independent implementations, so an auditor can check pdbg's signed roots with
standard tools. The domain-separation prefixes (0x00 leaf, 0x01 node) stop a leaf
from ever being confused with an interior node (second-preimage attacks).

``MTH({}) = SHA-256()``; ``MTH({d}) = SHA-256(0x00 || d)``; for n > 1 with k the
largest power of two below n: ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.
In the audit log the leaf data ``d`` is the 32-byte record hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_of_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves, level by level (an odd last node moves up
    unchanged, which equals RFC 6962's largest-power-of-two split). O(n), no recursion."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(b"\x01" + a + b).digest() for a, b in zip(level[0::2], level[1::2])]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


class Frontier:
    """The roots of the perfect subtrees that make up a tree of ``size`` leaves,
    largest first (one per set bit of ``size``).

    This is all an appender needs to keep: adding a leaf merges O(log n) nodes and
    the root is a fold over at most log2(n) nodes, so appends never re-read the log.
    """

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.nodes = list(nodes)
        if len(self.nodes) != bin(size).count("1"):
            raise ValueError("frontier does not match its tree size")

    def append_leaf_hash(self, leaf: bytes) -> None:
        self.nodes.append(leaf)
        self.size += 1
        # Each trailing 1-bit of the old size is a perfect subtree now completed.
        n = self.size
        while n % 2 == 0:
            right = self.nodes.pop()
            left = self.nodes.pop()
            self.nodes.append(node_hash(left, right))
            n //= 2

    def append(self, data: bytes) -> None:
        self.append_leaf_hash(leaf_hash(data))

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def copy(self) -> Frontier:
        return Frontier(self.size, self.nodes)

    def to_hex(self) -> list[str]:
        return [n.hex() for n in self.nodes]

    @classmethod
    def from_hex(cls, size: int, nodes: Iterable[str]) -> Frontier:
        return cls(size, (bytes.fromhex(n) for n in nodes))
