-- name: status_mix
-- title: Status class mix of one service
-- description: Requests per status class (2xx/3xx/4xx/5xx) for one service; the classes come from the query (CASE), so they are public keys.
-- dataset: requests
-- epsilon: 0.2
-- param service: string = checkout | the service to inspect
-- param start: timestamp = 2026-11-20 13:00:00 | window start (inclusive)
-- param end: timestamp = 2026-11-20 16:00:00 | window end (exclusive)
-- chart: bar
-- reviewed: privacy-office 2026-11-28
SELECT CASE WHEN status >= 500 THEN '5xx'
            WHEN status >= 400 THEN '4xx'
            WHEN status >= 300 THEN '3xx'
            ELSE '2xx' END AS status_class,
       COUNT(*) AS n
FROM requests
WHERE service = $service AND ts >= $start AND ts < $end
GROUP BY status_class
