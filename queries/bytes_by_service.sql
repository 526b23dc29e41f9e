-- name: bytes_by_service
-- title: Bytes sent by service
-- description: Total response bytes per service (clamped per request to the policy bounds); spots payload blow-ups and truncated responses.
-- dataset: requests
-- epsilon: 0.2
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT service, SUM(bytes_out) AS bytes
FROM requests
WHERE ts >= $start AND ts < $end
GROUP BY service
