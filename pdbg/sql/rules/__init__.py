"""Refusal rules: one module per rule, each with ``RULE`` (its stable id) and ``check(ctx)``.

``STATEMENT_RULES`` run on the raw parse (before parameters are bound or tables resolved),
``SHAPE_RULES`` on the flat query (one SELECT over the private table, columns resolved).
Table/column resolution rules (unknown-table, private-join, join-condition, subquery,
unknown-column) are raised by :mod:`pdbg.sql.flatten`, which is the only place that knows scopes.
"""

from __future__ import annotations

from pdbg.sql.rules import (
    aggregate_placement,
    blocked_function,
    count_distinct,
    distinct_aggregate,
    free_text_key,
    function_allowlist,
    no_star,
    non_dp_aggregate,
    reserved_name,
    resolved_allowlist,
    row_level_output,
    select_only,
    sensitive_column,
    set_operation,
    single_statement,
    system_catalog,
    table_function,
    unsupported_aggregate,
    volatile_function,
    window_function,
)

STATEMENT_RULES = (
    single_statement,
    select_only,
    set_operation,
    system_catalog,
    table_function,
    window_function,
    volatile_function,
    blocked_function,
    no_star,
    reserved_name,
    non_dp_aggregate,
    unsupported_aggregate,
    distinct_aggregate,
    function_allowlist,
)

SHAPE_RULES = (
    count_distinct,
    aggregate_placement,
    sensitive_column,
    free_text_key,
    row_level_output,
    resolved_allowlist,
)

ALL_RULE_IDS = tuple(m.RULE for m in STATEMENT_RULES + SHAPE_RULES) + (
    "syntax", "unknown-table", "private-join", "join-condition", "subquery", "unknown-column",
    "parameter", "unbounded-value", "unsupported-expression", "too-many-buckets", "post-processing",
    "unsupported-grouping", "internal-verifier", "key-type",
)
