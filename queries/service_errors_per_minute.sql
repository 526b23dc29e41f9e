-- name: service_errors_per_minute
-- title: One service, requests and errors per minute
-- description: Requests and 5xx per minute for one service in a short window, to time the start and end of an incident.
-- dataset: requests
-- epsilon: 0.3
-- param service: string = checkout | the service to follow
-- param start: timestamp = 2026-11-20 14:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 14:30:00 | window end (exclusive)
-- chart: line
-- reviewed: privacy-office 2026-11-28
SELECT date_trunc('minute', ts) AS m,
       COUNT(*) AS requests,
       COUNT(*) FILTER (WHERE status >= 500) AS errors
FROM requests
WHERE service = $service AND ts >= $start AND ts < $end
GROUP BY m
ORDER BY m
