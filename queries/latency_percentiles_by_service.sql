-- name: latency_percentiles_by_service
-- title: Latency p50 / p95 / p99 by service
-- description: DP quantiles of latency per service (exponential mechanism over candidates from the policy bounds, never from the data).
-- dataset: requests
-- epsilon: 0.4
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- notes: Latencies above the policy's upper bound are clamped to it, so a p99 at the bound means "at least".
-- reviewed: privacy-office 2026-11-28
SELECT service,
       quantile_cont(latency_ms, 0.5) AS p50,
       quantile_cont(latency_ms, 0.95) AS p95,
       quantile_cont(latency_ms, 0.99) AS p99
FROM requests
WHERE ts >= $start AND ts < $end
GROUP BY service
