-- name: top_error_codes
-- title: Top error codes
-- description: The most frequent error codes. Error codes are a private key, so a code is released only if enough distinct users hit it (DP partition selection, costs delta): a rare code can never reveal that one user exists.
-- dataset: requests
-- epsilon: 0.3
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT error_code, COUNT(*) AS n
FROM requests
WHERE error_code IS NOT NULL AND ts >= $start AND ts < $end
GROUP BY error_code
ORDER BY n DESC
LIMIT 10
