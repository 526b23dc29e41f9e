-- input
SELECT region, median(bytes_out) AS p50 FROM requests GROUP BY region
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.region AS region FROM requests AS __r),
__per_unit AS (SELECT __unit, region FROM __base WHERE (region IN ('eu-west', 'us-east')) GROUP BY __unit, region)
SELECT region, COUNT(*) AS __units FROM __per_unit WHERE $salt IS NOT NULL GROUP BY region ORDER BY region
-- quantile_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.region AS region, CASE WHEN (__r.bytes_out) IS NOT NULL THEN LEAST(GREATEST(__r.bytes_out, 0), 1000) END AS __v0 FROM requests AS __r),
__vals AS (SELECT __unit, region, '__q0' AS __qid, LEAST(GREATEST(CAST(floor((__v0 - 0.0) / 5.025125628140704) AS BIGINT) + 1, 1), 200) AS __bin FROM __base WHERE (region IN ('eu-west', 'us-east')) AND __v0 IS NOT NULL),
__cells AS (SELECT __unit, region, __qid, __bin, COUNT(*) AS __c FROM __vals GROUP BY __unit, region, __qid, __bin),
__alloc AS (SELECT *, SUM(__c) OVER (PARTITION BY __unit, region, __qid ORDER BY hash(__unit, $salt, __qid, __bin) ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __cum, SUM(__c) OVER (PARTITION BY __unit, region, __qid) AS __tot FROM __cells),
__kept AS (SELECT * FROM (SELECT *, CASE WHEN __tot <= 3 THEN __c ELSE (__cum * 3) // __tot - ((__cum - __c) * 3) // __tot END AS __n FROM __alloc))
SELECT region, __qid, __bin, SUM(__n) AS __n FROM __kept GROUP BY region, __qid, __bin HAVING SUM(__n) > 0 ORDER BY region, __qid, __bin
