-- input
SELECT region, median(bytes_out) AS p50 FROM requests GROUP BY region
-- bounded_sql
WITH __base AS (SELECT __r.user_id AS __unit, __r.region AS region FROM requests AS __r),
__per_unit AS (SELECT __unit, region FROM __base WHERE (region IN ('eu-west', 'us-east')) GROUP BY __unit, region)
SELECT region, COUNT(*) AS __units FROM __per_unit WHERE $salt IS NOT NULL GROUP BY region ORDER BY region
-- quantile_sql
WITH __base AS (SELECT __r.user_id AS __unit, __r.region AS region, CASE WHEN (__r.bytes_out) IS NOT NULL THEN LEAST(GREATEST(__r.bytes_out, 0), 1000) END AS __v0 FROM requests AS __r),
__vals AS (SELECT __unit, region, '__q0' AS __qid, LEAST(GREATEST(CAST(floor((__v0 - 0.0) / 5.025125628140704) AS BIGINT) + 1, 1), 200) AS __bin, hash(__unit, $salt, '__q0', __v0) AS __rh FROM __base WHERE (region IN ('eu-west', 'us-east')) AND __v0 IS NOT NULL),
__ranked AS (SELECT *, row_number() OVER (PARTITION BY __unit, region, __qid ORDER BY __rh) AS __rn FROM __vals)
SELECT region, __qid, __bin, COUNT(*) AS __n FROM __ranked WHERE __rn <= 3 GROUP BY region, __qid, __bin ORDER BY region, __qid, __bin
