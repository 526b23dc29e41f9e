"""Which aggregate a node is: supported DP aggregate, known non-DP aggregate, or other.

sqlglot 30 parses DuckDB's quantile family into several node shapes:
``quantile_cont(x, a)``/``quantile_disc`` → PercentileCont/PercentileDisc(this=x, expression=a);
``percentile_cont(a) WITHIN GROUP (ORDER BY x)`` → WithinGroup(PercentileCont(this=a), Order);
``median(x)`` → Median; ``approx_quantile(x, a)`` → ApproxQuantile(this, quantile);
``quantile(x, a)`` → Quantile(this, quantile).
"""

from __future__ import annotations

from sqlglot import exp

QUANTILE_NODES = (exp.PercentileCont, exp.PercentileDisc, exp.Median, exp.ApproxQuantile, exp.Quantile)
VARIANCE_NODES = (exp.Stddev, exp.StddevSamp, exp.StddevPop, exp.Variance, exp.VariancePop)
SUPPORTED = (exp.Count, exp.Sum, exp.Avg) + VARIANCE_NODES + QUANTILE_NODES

_NON_DP_NODES = tuple(getattr(exp, n) for n in (
    "Min", "Max", "ArrayAgg", "GroupConcat", "First", "Last", "AnyValue", "Mode", "ArgMax", "ArgMin",
    "ArrayUniqueAgg", "ArrayConcatAgg", "LogicalAnd", "LogicalOr", "BitwiseAndAgg", "BitwiseOrAgg",
    "BitwiseXorAgg", "StringAgg", "ListAgg") if hasattr(exp, n))
NON_DP_NAMES = {"min", "max", "list", "array_agg", "string_agg", "group_concat", "listagg", "arbitrary", "first",
                "last", "any_value", "histogram", "mode", "arg_max", "arg_min", "max_by", "min_by", "argmax",
                "argmin", "bit_and", "bit_or", "bit_xor", "bool_and", "bool_or", "bitstring_agg", "list_agg",
                "histogram_exact", "array_agg_distinct"}
OTHER_AGG_NAMES = {"entropy", "kurtosis", "kurtosis_pop", "skewness", "product", "corr", "covar_pop", "covar_samp",
                   "regr_avgx", "regr_avgy", "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx",
                   "regr_sxy", "regr_syy", "fsum", "sumkahan", "kahan_sum", "favg", "mad", "reservoir_quantile",
                   "approx_count_distinct", "count_if", "countif", "geomean", "geometric_mean", "sem",
                   "approx_top_k", "bitstring_agg", "weighted_avg", "sum_no_overflow", "count_star"}


def name_of(node) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return type(node).__name__.lower()


def is_non_dp(node) -> bool:
    return isinstance(node, _NON_DP_NODES) or (isinstance(node, exp.Anonymous) and name_of(node) in NON_DP_NAMES)


def is_aggregate(node) -> bool:
    return isinstance(node, exp.AggFunc) or (isinstance(node, exp.Anonymous)
                                             and name_of(node) in NON_DP_NAMES | OTHER_AGG_NAMES)


def unwrap(node):
    """(aggregate, filter condition or None, within-group Order or None) of a select expression."""
    filt = order = None
    while True:
        if isinstance(node, exp.Filter):
            w = node.expression
            filt = w.this if isinstance(w, exp.Where) else w
            node = node.this
        elif isinstance(node, exp.WithinGroup):
            order = node.expression
            node = node.this
        elif isinstance(node, (exp.IgnoreNulls, exp.RespectNulls, exp.Paren)):
            node = node.this
        else:
            return node, filt, order


def contains_agg(e) -> bool:
    return any(is_aggregate(n) for n in e.walk())
