-- name: requests_total
-- title: Total requests in a window
-- description: All requests inside a time window; the baseline every rate is read against.
-- dataset: requests
-- epsilon: 0.1
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- reviewed: privacy-office 2026-11-28
SELECT COUNT(*) AS requests
FROM requests
WHERE ts >= $start AND ts < $end
