"""Release tables round-trip through the cache payload exactly as pandas' own reader does."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdbg.session import _df_from_payload, _df_to_payload


def reference(payload: str) -> pd.DataFrame:
    # precise_float: pandas' default float parser can be off by an ulp; pdbg's reader parses exactly.
    return pd.read_json(io.StringIO(payload), orient="table", precise_float=True)


FRAMES = {
    "counts": pd.DataFrame({"service": ["auth", "checkout"], "errors": [3, -1], "errors_ci_low": [0, -5]}),
    "floats with NaN": pd.DataFrame({"region": ["eu", None], "p99": [812.25, np.nan]}),
    "minutes": pd.DataFrame({"m": pd.to_datetime(["2026-11-20 14:02", "2026-11-20 14:03", None]), "n": [1, 2, 3]}),
    "nullable ints": pd.DataFrame({"k": ["a", "b"], "n": pd.array([1, None], dtype="Int64")}),
    "booleans": pd.DataFrame({"is_5xx": [True, False], "n": [4, 5]}),
    "empty": pd.DataFrame({"service": pd.Series([], dtype="str"), "n": pd.Series([], dtype="int64")}),
    "no rows, float": pd.DataFrame({"x": pd.Series([], dtype="float64")}),
    "tz-aware": pd.DataFrame({"t": pd.to_datetime(["2026-11-20 14:02"]).tz_localize("UTC"), "n": [1]}),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_payload_reads_back_like_pandas(name):
    payload = _df_to_payload(FRAMES[name])
    pd.testing.assert_frame_equal(_df_from_payload(payload), reference(payload), check_exact=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.text(max_size=5)),
                          st.integers(-10**12, 10**12),
                          st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32))),
                max_size=6))
def test_payload_round_trip_matches_pandas_on_generated_tables(rows):
    df = pd.DataFrame(rows, columns=["key", "n", "x"]).astype({"key": "str", "n": "int64", "x": "float64"})
    payload = _df_to_payload(df)
    pd.testing.assert_frame_equal(_df_from_payload(payload), reference(payload), check_exact=True)
