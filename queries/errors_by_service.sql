-- name: errors_by_service
-- title: 5xx by service
-- description: Server errors (status >= 500) per service inside a time window. Services are a public domain in the policy, so every service appears, including those with zero errors.
-- dataset: requests
-- epsilon: 0.2
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT service, COUNT(*) AS errors
FROM requests
WHERE status >= 500 AND ts >= $start AND ts < $end
GROUP BY service
