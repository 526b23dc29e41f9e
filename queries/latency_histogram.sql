-- name: latency_histogram
-- title: Latency histogram
-- description: Requests per latency band for one service; bands are fixed by the query (CASE), so every band appears.
-- dataset: requests
-- epsilon: 0.2
-- param service: string = checkout | the service to inspect
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT CASE WHEN latency_ms < 50 THEN '0-50ms'
            WHEN latency_ms < 100 THEN '50-100ms'
            WHEN latency_ms < 250 THEN '100-250ms'
            WHEN latency_ms < 500 THEN '250-500ms'
            WHEN latency_ms < 1000 THEN '500ms-1s'
            WHEN latency_ms < 2500 THEN '1-2.5s'
            ELSE '>2.5s' END AS band,
       COUNT(*) AS n
FROM requests
WHERE service = $service AND ts >= $start AND ts < $end
GROUP BY band
