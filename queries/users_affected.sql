-- name: users_affected
-- title: Users affected
-- description: Distinct users who saw at least one server error in the window (each user counts once, whatever their number of requests).
-- dataset: requests
-- epsilon: 0.2
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- reviewed: privacy-office 2026-11-28
SELECT COUNT(DISTINCT user_id) AS users_affected
FROM requests
WHERE status >= 500 AND ts >= $start AND ts < $end
