-- name: users_affected_by_region
-- title: Users affected by region
-- description: Distinct users with at least one server error, per region.
-- dataset: requests
-- epsilon: 0.2
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT region, COUNT(DISTINCT user_id) AS users_affected
FROM requests
WHERE status >= 500 AND ts >= $start AND ts < $end
GROUP BY region
