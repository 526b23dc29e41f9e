"""The demo investigation: a handful of DP queries that locate the injected incident.

Every step is an ordinary ``Session.sql`` release; everything computed from the
answers afterwards (rates, arg-max, the change point) is post-processing of
noisy values and costs nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

# ε per step (the grant is ε=1; under zCDP the five releases compose to less than their sum)
STEP_EPSILON = {"service": 0.15, "region": 0.15, "timeline": 0.7, "latency": 0.2, "users": 0.1}
BUCKET_MINUTES = 2


@dataclass
class Findings:
    service: str
    region: str
    start: datetime
    users_affected: float
    p99_ms: float
    spent_epsilon: float
    remaining_epsilon: float
    steps: list = field(default_factory=list)       # (title, Result)


def _rate(df, errors="users_with_5xx", total="users"):
    return (df[errors].clip(lower=0) / df[total].clip(lower=1)).clip(upper=1.0)


def change_point(values: list[float]) -> int:
    """Index of the first bucket of the incident: the contiguous run that most exceeds the baseline.

    An incident is a bump (it starts and later ends), so a single-split CUSUM would
    look for the wrong shape. Each bucket scores against the level halfway between the
    baseline (the median: an incident covers less than half of the window) and the
    incident level (the 90th percentile); the run with the largest summed score is found
    with Kadane's algorithm. Pure post-processing of released values.
    """
    ordered = sorted(values)
    n = len(ordered)
    baseline = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    level = ordered[min(n - 1, int(0.9 * n))]
    mid = (baseline + level) / 2
    best, best_start, run, run_start = float("-inf"), 0, 0.0, 0
    for i, v in enumerate(values):
        if run <= 0:
            run, run_start = 0.0, i
        run += v - mid
        if run > best:
            best, best_start = run, run_start
    return best_start


def investigate(session, window: tuple[datetime, datetime], echo=None) -> Findings:
    say = echo or (lambda *_: None)
    steps = []

    # Users, not requests: each user counts once per group, so a retrying client weighs no more
    # than anyone else and the noise does not depend on the policy's rows-per-user bound k.
    q1 = ("SELECT service, COUNT(DISTINCT user_id) FILTER (WHERE status >= 500) AS users_with_5xx, "
          "COUNT(DISTINCT user_id) AS users FROM requests GROUP BY service")
    r1 = session.sql(q1, epsilon=STEP_EPSILON["service"])
    steps.append(("5xx by service", r1))
    service = r1.df.assign(rate=_rate(r1.df)).sort_values("rate", ascending=False)["service"].iloc[0]
    say("5xx by service", r1, f"highest error rate: {service}")

    q2 = ("SELECT region, COUNT(DISTINCT user_id) FILTER (WHERE status >= 500) AS users_with_5xx, "
          "COUNT(DISTINCT user_id) AS users FROM requests WHERE service = $service GROUP BY region")
    r2 = session.sql(q2, epsilon=STEP_EPSILON["region"], params={"service": service})
    steps.append((f"5xx by region for {service}", r2))
    region = r2.df.assign(rate=_rate(r2.df)).sort_values("rate", ascending=False)["region"].iloc[0]
    say(f"5xx by region for {service}", r2, f"highest error rate: {region}")

    lo, hi = window
    q3 = (f"SELECT time_bucket(INTERVAL '{BUCKET_MINUTES} minutes', ts) AS t, COUNT(DISTINCT user_id) AS users_with_5xx "
          "FROM requests "
          "WHERE status >= 500 AND service = $service AND region = $region "
          f"AND ts >= TIMESTAMP '{lo:%Y-%m-%d %H:%M:%S}' AND ts < TIMESTAMP '{hi:%Y-%m-%d %H:%M:%S}' "
          "GROUP BY t ORDER BY t")
    r3 = session.sql(q3, epsilon=STEP_EPSILON["timeline"], params={"service": service, "region": region})
    steps.append((f"5xx over time, {service} in {region}", r3))
    ts = r3.df.sort_values("t")
    i = change_point([float(v) for v in ts["users_with_5xx"]])
    start = ts["t"].iloc[i].to_pydatetime()
    say(f"5xx over time, {service} in {region}", r3, f"change point: {start:%Y-%m-%d %H:%M}")

    q4 = "SELECT service, quantile_cont(latency_ms, 0.99) AS p99 FROM requests WHERE region = $region GROUP BY service"
    r4 = session.sql(q4, epsilon=STEP_EPSILON["latency"], params={"region": region})
    steps.append((f"p99 latency by service in {region}", r4))
    p99 = float(r4.df.set_index("service").loc[service, "p99"])
    say(f"p99 latency by service in {region}", r4, f"{service}: p99 ≈ {p99:,.0f} ms")

    q5 = ("SELECT COUNT(DISTINCT user_id) AS users_affected FROM requests WHERE status >= 500 "
          "AND service = $service AND region = $region "
          f"AND ts >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'")
    r5 = session.sql(q5, epsilon=STEP_EPSILON["users"], params={"service": service, "region": region})
    steps.append(("users affected since the change point", r5))
    users = float(r5.df["users_affected"].iloc[0])
    say("users affected since the change point", r5, f"≈ {users:,.0f} users")

    b = session.budget()
    return Findings(service=service, region=region, start=start, users_affected=users, p99_ms=p99,
                    spent_epsilon=b.spent_epsilon, remaining_epsilon=b.remaining_epsilon, steps=steps)


def within(found: datetime, truth: datetime, minutes: int = 5) -> bool:
    return abs(found.replace(tzinfo=None) - truth.replace(tzinfo=None)) <= timedelta(minutes=minutes)
