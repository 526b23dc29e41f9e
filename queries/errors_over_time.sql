-- name: errors_over_time
-- title: 5xx over time
-- description: Server errors per 5-minute bucket inside a bounded window. Buckets are derived from the window (public keys), so empty buckets appear as noisy zeros instead of disappearing.
-- dataset: requests
-- epsilon: 0.3
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: line
-- reviewed: privacy-office 2026-11-28
SELECT time_bucket(INTERVAL '5 minutes', ts) AS t, COUNT(*) AS errors
FROM requests
WHERE status >= 500 AND ts >= $start AND ts < $end
GROUP BY t
ORDER BY t
