-- input
SELECT time_bucket(INTERVAL '30 minutes', ts) AS t, COUNT(DISTINCT user_id) AS users FROM requests WHERE ts >= TIMESTAMP '2026-11-20 14:00:00' AND ts < TIMESTAMP '2026-11-20 15:00:00' GROUP BY t
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, TIME_BUCKET(INTERVAL '30' MINUTES, __r.ts) AS t, 1 AS __m0 FROM requests AS __r WHERE __r.ts >= CAST('2026-11-20 14:00:00' AS TIMESTAMP) AND __r.ts < CAST('2026-11-20 15:00:00' AS TIMESTAMP)),
__per_unit AS (SELECT __unit, t, MAX(__m0) AS __m0 FROM __base WHERE (t BETWEEN TIMESTAMP '2026-11-20 14:00:00' AND TIMESTAMP '2026-11-20 14:30:00') GROUP BY __unit, t)
SELECT t, COALESCE(SUM(__m0), 0) AS __m0, COUNT(*) AS __units FROM __per_unit WHERE $salt IS NOT NULL GROUP BY t ORDER BY t
