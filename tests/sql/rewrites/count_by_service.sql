-- input
SELECT service, COUNT(*) FILTER (WHERE status >= 500) AS errors, AVG(latency_ms) AS mean_latency FROM requests GROUP BY service
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.service AS service, CASE WHEN (__r.status >= 500) THEN 1 ELSE 0 END AS __m0, CASE WHEN (__r.latency_ms) IS NOT NULL THEN 1 ELSE 0 END AS __m1, CASE WHEN (__r.latency_ms) IS NOT NULL THEN CAST(round((LEAST(GREATEST(__r.latency_ms, 0), 30000) - 15000) * 1000) AS BIGINT) END AS __m2 FROM requests AS __r),
__per_unit AS (SELECT __unit, service, LEAST(SUM(__m0), 3) AS __m0, LEAST(SUM(__m1), 3) AS __m1, LEAST(GREATEST(COALESCE(CAST(round(AVG(__m2) * LEAST(COUNT(__m2), 3)) AS BIGINT), 0), -45000000), 45000000) AS __m2 FROM __base WHERE (service IN ('api', 'auth', 'checkout', 'search')) GROUP BY __unit, service),
__capped AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY __unit ORDER BY __h) AS __rn FROM (SELECT *, hash(__unit, $salt, service) AS __h FROM __per_unit)) WHERE __rn <= 2)
SELECT service, COALESCE(SUM(__m0), 0) AS __m0, COALESCE(SUM(__m1), 0) AS __m1, COALESCE(SUM(__m2), 0) AS __m2, COUNT(*) AS __units FROM __capped GROUP BY service ORDER BY service
