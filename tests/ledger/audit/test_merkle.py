"""RFC 6962 tree heads: published test vectors and agreement with a naive recursion."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdbg.ledger.audit.merkle import EMPTY_ROOT, Frontier, leaf_hash, node_hash, root_of_leaf_hashes

from .conftest import naive_mth

# The eight leaf inputs used by Certificate Transparency implementations
# (transparency-dev/merkle testonly, certificate-transparency merkle_tree_test) and the
# tree head for every prefix size 0..8.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_vectors_frontier(size):
    f = Frontier()
    for d in CT_LEAVES[:size]:
        f.append(d)
    assert f.root().hex() == CT_ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_rfc6962_vectors_batch_and_naive(size):
    leaves = [leaf_hash(d) for d in CT_LEAVES[:size]]
    assert root_of_leaf_hashes(leaves).hex() == CT_ROOTS[size]
    assert naive_mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


def test_empty_and_prefixes():
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    assert leaf_hash(b"").hex() == CT_ROOTS[1]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == CT_ROOTS[2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=70))
def test_frontier_matches_naive_for_every_prefix(data):
    f = Frontier()
    for i, d in enumerate(data):
        f.append(d)
        if i % 7 == 0 or i == len(data) - 1:
            assert f.root() == naive_mth(data[: i + 1])
    assert root_of_leaf_hashes([leaf_hash(d) for d in data]) == naive_mth(data)
    # the frontier survives a round trip through head.json
    g = Frontier.from_hex(f.size, f.to_hex())
    assert g.root() == f.root()


def test_frontier_rejects_inconsistent_size():
    with pytest.raises(ValueError):
        Frontier(3, [EMPTY_ROOT])
