-- input
SELECT service, COUNT(*) FILTER (WHERE status >= 500) AS errors, AVG(latency_ms) AS mean_latency FROM requests GROUP BY service
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.service AS service, CASE WHEN (__r.status >= 500) THEN 1 END AS __m0, CASE WHEN (__r.latency_ms) IS NOT NULL THEN 1 END AS __m1, CASE WHEN (__r.latency_ms) IS NOT NULL THEN CAST(round((LEAST(GREATEST(__r.latency_ms, 0), 30000) - 15000) * 1000) AS BIGINT) END AS __m2 FROM requests AS __r),
__per_unit AS MATERIALIZED (SELECT __unit, service, hash(__unit, $salt, service) AS __h, LEAST(COUNT(__m0), 3) AS __m0, LEAST(COUNT(__m1), 3) AS __m1, LEAST(GREATEST(COALESCE(CAST(round(AVG(__m2) * LEAST(COUNT(__m2), 3)) AS BIGINT), 0), -45000000), 45000000) AS __m2 FROM __base WHERE (service IN ('api', 'auth', 'checkout', 'search')) GROUP BY __unit, service),
__heavy AS (SELECT __unit FROM __per_unit GROUP BY __unit HAVING COUNT(*) > 2),
__cut AS (SELECT __unit, min(__h, 3) AS __c FROM __per_unit SEMI JOIN __heavy USING (__unit) GROUP BY __unit),
__capped AS (SELECT __per_unit.* FROM __per_unit LEFT JOIN __cut USING (__unit) WHERE __c IS NULL OR __h < __c[2] OR (__h = __c[2] AND __c[2] < __c[3]))
SELECT service, CAST(LEAST(GREATEST(COALESCE(SUM(__m0), 0), -4611686018427387903), 4611686018427387903) AS BIGINT) AS __m0, CAST(LEAST(GREATEST(COALESCE(SUM(__m1), 0), -4611686018427387903), 4611686018427387903) AS BIGINT) AS __m1, CAST(LEAST(GREATEST(COALESCE(SUM(__m2), 0), -4611686018427387903), 4611686018427387903) AS BIGINT) AS __m2, COUNT(*) AS __units FROM __capped GROUP BY service ORDER BY service
