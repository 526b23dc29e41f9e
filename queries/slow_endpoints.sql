-- name: slow_endpoints
-- title: Slow endpoints
-- description: Endpoints with the most requests slower than a threshold. Endpoints outside the public domain go through partition selection.
-- dataset: requests
-- epsilon: 0.3
-- param threshold_ms: integer = 2000 | latency above which a request counts as slow
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT endpoint, COUNT(*) AS slow
FROM requests
WHERE latency_ms > $threshold_ms AND ts >= $start AND ts < $end
GROUP BY endpoint
ORDER BY slow DESC
LIMIT 5
