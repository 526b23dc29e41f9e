"""Only cheap, deterministic row functions may appear in a query (an allowlist, not a blocklist).

Why: an expensive expression behind a predicate on private data (e.g. repeat() feeding
levenshtein() only when a row matches) makes the engine time out only if a matching row
exists — an exact, noiseless membership test through the query time limit. Functions
whose cost the query text can blow up are therefore not allowed; the allowed ones run in
time linear in their input. Aggregates and window functions are judged by their own rules.
"""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "function-not-allowed"

# sqlglot expression classes (by name) that are cheap and deterministic.
_CLASSES = {
    # logic, comparison helpers, conditionals, casts
    "And", "Or", "Xor", "If", "Case", "Coalesce", "Nullif", "Cast", "TryCast", "Try", "Greatest", "Least",
    "Paren", "Boolean",
    # arithmetic
    "Abs", "Round", "Floor", "Ceil", "Ln", "Log", "Log2", "Log10", "Exp", "Sqrt", "Pow", "Sign", "Mod",
    # text (linear time; regular expressions are RE2: linear, no backtracking)
    "Lower", "Upper", "Length", "Substring", "StartsWith", "EndsWith", "Contains", "Trim", "Left", "Right",
    "StrPosition", "RegexpLike", "RegexpILike", "Concat", "ConcatWs",
    # time
    "DateTrunc", "TimestampTrunc", "DateBin", "TimeBucket", "Extract", "DatePart", "Date", "TsOrDsToDate",
    "DateAdd", "DateSub", "TimestampAdd", "TimestampSub", "Timestamp", "StrToTime", "TimeToStr", "Hour",
    "Minute", "Second", "Day", "Month", "Year", "DayOfWeek", "DayOfMonth", "DayOfYear", "WeekOfYear", "Quarter",
    "UnixToTime", "TimeToUnix", "EpochMs",
}
# DuckDB function names sqlglot leaves as anonymous calls.
_NAMES = {
    "time_bucket", "date_trunc", "datetrunc", "date_part", "datepart", "epoch", "epoch_ms", "strftime", "strptime",
    "starts_with", "ends_with", "prefix", "suffix", "contains", "lower", "upper", "lcase", "ucase", "length",
    "strlen", "regexp_matches", "regexp_full_match", "ilike_escape", "like_escape", "hour", "minute", "second",
    "dayofweek", "isodow", "year", "month", "day", "quarter", "week", "try", "coalesce", "ifnull", "nullif",
    "greatest", "least", "abs", "round", "floor", "ceil", "ceiling", "ln", "log", "log10", "log2", "exp",
    "sqrt", "pow", "power", "sign", "trunc", "make_timestamp", "to_timestamp", "timezone",
}


def _name(node) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


def allowed_function(node) -> bool:
    """A row function call that is cheap and deterministic (``Array`` is a list constructor, judged by its callers)."""
    if isinstance(node, exp.Anonymous):
        return _name(node) in _NAMES
    if isinstance(node, exp.Array):
        return False
    return type(node).__name__ in _CLASSES or _name(node) in _NAMES


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if not isinstance(node, exp.Func) or isinstance(node, (exp.AggFunc, exp.Window, exp.Array, exp.Exists, exp.Columns)):
            continue
        if not allowed_function(node):
            reject(RULE, f"function {_name(node)}() is not allowed in pdbg queries",
                   "Use comparisons, CASE, CAST, arithmetic, simple text tests (LIKE, lower, starts_with, "
                   "regexp_matches) and time functions (time_bucket, date_trunc, extract); costly functions "
                   "could turn the query time limit into a side channel.")
