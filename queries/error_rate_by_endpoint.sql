-- name: error_rate_by_endpoint
-- title: Error rate by endpoint of one service
-- description: Requests and server errors per endpoint of one service. Endpoints not in the policy's public domain are released only if they pass DP partition selection (costs delta).
-- dataset: requests
-- epsilon: 0.3
-- param service: string = checkout | the service to break down
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT endpoint,
       COUNT(*) AS requests,
       COUNT(*) FILTER (WHERE status >= 500) AS errors
FROM requests
WHERE service = $service AND ts >= $start AND ts < $end
GROUP BY endpoint
