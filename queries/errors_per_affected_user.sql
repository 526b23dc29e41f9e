-- name: errors_per_affected_user
-- title: Errors per affected user (retry-storm signal)
-- description: Server errors and distinct affected users per service; errors divided by users is the DP-valid stand-in for "retries per session". session_id is a tokenized identifier: grouping by it would release one row per session, and a distinct count of sessions has no policy bound per user, so neither is allowed.
-- dataset: requests
-- epsilon: 0.3
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- notes: Each user contributes at most max_rows_per_unit rows per group, so very heavy retriers are capped and the ratio reads low during a retry storm; a ratio near that cap is itself the signal.
-- reviewed: privacy-office 2026-11-28
SELECT service,
       COUNT(*) AS errors,
       COUNT(DISTINCT user_id) AS users
FROM requests
WHERE status >= 500 AND ts >= $start AND ts < $end
GROUP BY service
