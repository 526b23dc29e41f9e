"""The five investigation queries and the shared privacy setting, as plain data.

Imported by every runner (pdbg's venv and the peer venvs), so it must depend on nothing
but the standard library. Contribution bounds mirror the packaged demo policy
(pdbg/demo/requests.policy.yaml; k = 5 rows per user and group, g = 4 groups per user when written),
latency clamped to [0, 30000] ms; the driver passes the policy's actual k and g with
--k/--g. Peers without a per-group bound get the equivalent total bound k*g rows per user.
"""

K_ROWS = 1
G_GROUPS = 4
MAX_ROWS_PER_USER = K_ROWS * G_GROUPS
LAT_BOUNDS = (0.0, 30000.0)
DELTA = 1e-6
WINDOW = ("2026-11-20 14:00:00", "2026-11-20 15:00:00")
SERVICES = ("checkout", "search", "auth", "catalog", "payments", "profile")
REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south")
ALPHAS = (0.5, 0.95, 0.99)

# name -> key column, value columns, kind
QUERIES = {
    "count_5xx_by_service": {"key": "service", "values": ["errors"], "kind": "count"},
    "avg_latency_1h_window": {"key": "service", "values": ["mean_latency"], "kind": "avg"},
    "latency_p50_p95_p99_by_service": {"key": "service", "values": ["p50", "p95", "p99"], "kind": "quantile"},
    "distinct_users_5xx_by_region": {"key": "region", "values": ["users"], "kind": "count_units"},
    "count_by_error_code": {"key": "error_code", "values": ["n"], "kind": "selection"},
}

# The SQL an investigator writes (pdbg, and plain DuckDB for the exact answer).
PDBG_SQL = {
    "count_5xx_by_service":
        "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service",
    "avg_latency_1h_window":
        "SELECT service, AVG(latency_ms) AS mean_latency FROM requests "
        f"WHERE ts >= TIMESTAMP '{WINDOW[0]}' AND ts < TIMESTAMP '{WINDOW[1]}' GROUP BY service",
    "latency_p50_p95_p99_by_service":
        "SELECT service, quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) AS p95, "
        "quantile_cont(latency_ms, 0.99) AS p99 FROM requests GROUP BY service",
    "distinct_users_5xx_by_region":
        "SELECT region, COUNT(DISTINCT user_id) AS users FROM requests WHERE status >= 500 GROUP BY region",
    "count_by_error_code":
        "SELECT error_code, COUNT(*) AS n FROM requests WHERE error_code IS NOT NULL GROUP BY error_code",
}

# Plain (non-private) DuckDB: the same question; the average clamps to the policy bounds.
PLAIN_SQL = dict(PDBG_SQL)
PLAIN_SQL["avg_latency_1h_window"] = (
    f"SELECT service, AVG(LEAST(GREATEST(latency_ms, {LAT_BOUNDS[0]}), {LAT_BOUNDS[1]})) AS mean_latency "
    f"FROM requests WHERE ts >= TIMESTAMP '{WINDOW[0]}' AND ts < TIMESTAMP '{WINDOW[1]}' GROUP BY service"
)

# SmartNoise SQL dialect (table requests.requests; string compare on the ISO timestamp text).
SMARTNOISE_SQL = {
    "count_5xx_by_service":
        "SELECT service, COUNT(*) AS errors FROM requests.requests WHERE status >= 500 GROUP BY service",
    "avg_latency_1h_window":
        "SELECT service, AVG(latency_ms) AS mean_latency FROM requests.requests "
        f"WHERE ts >= '{WINDOW[0]}' AND ts < '{WINDOW[1]}' GROUP BY service",
    "latency_p50_p95_p99_by_service":
        "SELECT service, PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50 "
        "FROM requests.requests GROUP BY service",
    "distinct_users_5xx_by_region":
        "SELECT region, COUNT(DISTINCT user_id) AS users FROM requests.requests WHERE status >= 500 GROUP BY region",
    "count_by_error_code":
        "SELECT error_code, COUNT(*) AS n FROM requests.requests WHERE error_code IS NOT NULL GROUP BY error_code",
}

# Quantile candidates for peers that need them by hand: log-spaced over the policy bounds,
# like pdbg's automatic ones (never derived from the data).
N_CANDIDATES = 200
Q_CANDIDATES = [0.3 * (LAT_BOUNDS[1] / 0.3) ** (i / (N_CANDIDATES - 2)) for i in range(N_CANDIDATES - 1)]


# -- what every runner prints (each runs in its own venv but imports this file) --------------

def peak_rss() -> int:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited from the parent)."""
    import resource

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def emit(obj: dict) -> None:
    """One JSON object per line, flushed, so a driver that kills us on timeout keeps what finished."""
    import datetime as dt
    import json

    def jsonable(v):       # datetimes as ISO; Decimal/numpy numbers as floats; anything else as text
        if isinstance(v, (dt.datetime, dt.date)):
            return v.isoformat()
        try:
            return float(v)
        except (TypeError, ValueError):
            return str(v)

    obj["maxrss_so_far"] = peak_rss()
    print(json.dumps(obj, default=jsonable), flush=True)
