-- input
SELECT region, median(bytes_out) AS p50 FROM requests GROUP BY region
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.region AS region FROM requests AS __r)
SELECT region, COUNT(*) AS __units FROM __base WHERE FALSE AND $salt IS NOT NULL GROUP BY region
-- quantile_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.region AS region, CASE WHEN (__r.bytes_out) IS NOT NULL THEN LEAST(GREATEST(__r.bytes_out, 0), 1000) END AS __v0 FROM requests AS __r),
__lists AS (SELECT __unit, region, list(CAST(LEAST(GREATEST(CAST(floor((__v0 - 0.0) / 5.025125628140704) AS BIGINT) + 1, 1), 200) AS UTINYINT)) AS __l0 FROM __base WHERE (region IN ('eu-west', 'us-east')) AND __v0 IS NOT NULL GROUP BY __unit, region),
__sorted AS (SELECT region, __l0, CASE WHEN len(__l0) > 3 THEN list_sort(__l0) END AS __s0, CAST(hash(__unit, $salt, region, '__q0') % CAST(len(__l0) AS UBIGINT) AS BIGINT) AS __o0 FROM __lists),
__kept AS (SELECT region, CASE WHEN len(__l0) > 3 THEN list_transform(range(LEAST(len(__s0), 3)), lambda __j: __s0[1 + (__j * len(__s0) + __o0) // 3]) ELSE __l0 END AS __k0 FROM __sorted)
SELECT region, __qid, CAST(__b AS BIGINT) AS __bin, COUNT(*) AS __n FROM (SELECT region, '__q0' AS __qid, unnest(__k0) AS __b FROM __kept) GROUP BY region, __qid, __b ORDER BY region, __qid, __bin
