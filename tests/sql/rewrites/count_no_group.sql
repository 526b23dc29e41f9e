-- input
SELECT COUNT(*) AS n FROM requests WHERE status >= 500
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, 1 AS __m0 FROM requests AS __r WHERE __r.status >= 500),
__per_unit AS (SELECT __unit, LEAST(COUNT(__m0), 3) AS __m0 FROM __base GROUP BY __unit)
SELECT CAST(LEAST(GREATEST(COALESCE(SUM(__m0), 0), -4611686018427387903), 4611686018427387903) AS BIGINT) AS __m0, COUNT(*) AS __units FROM __per_unit WHERE $salt IS NOT NULL
