-- name: traffic_shift_by_region
-- title: Traffic shift by region around a change
-- description: Requests per region before and after a change (deploy, failover) inside a window; a failover shows as traffic moving between regions.
-- dataset: requests
-- epsilon: 0.3
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- param change: timestamp = 2026-11-20 14:00:00 | the moment of the change
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT region,
       COUNT(*) FILTER (WHERE ts < $change) AS requests_before,
       COUNT(*) FILTER (WHERE ts >= $change) AS requests_after
FROM requests
WHERE ts >= $start AND ts < $end
GROUP BY region
