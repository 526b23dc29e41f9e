-- name: mean_latency_by_service
-- title: Mean latency by service
-- description: Clamped mean latency per service; cheaper and tighter than percentiles for spotting a shift.
-- dataset: requests
-- epsilon: 0.2
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- notes: Values are clamped to the policy bounds before averaging; the clamping bias is reported separately.
-- reviewed: privacy-office 2026-11-28
SELECT service, AVG(latency_ms) AS mean_latency
FROM requests
WHERE ts >= $start AND ts < $end
GROUP BY service
