-- name: error_rate_by_region
-- title: Error rate by region
-- description: Share of requests with status >= 500 per region; shows whether an incident is regional.
-- dataset: requests
-- epsilon: 0.3
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT region, AVG(CASE WHEN status >= 500 THEN 1.0 ELSE 0.0 END) AS error_rate
FROM requests
WHERE ts >= $start AND ts < $end
GROUP BY region
