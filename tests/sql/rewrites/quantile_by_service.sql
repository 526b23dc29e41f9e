-- input
SELECT service, quantile_cont(latency_ms, [0.5, 0.9]) AS lat, median(bytes_out) AS b FROM requests GROUP BY service
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.service AS service FROM requests AS __r)
SELECT service, COUNT(*) AS __units FROM __base WHERE FALSE AND $salt IS NOT NULL GROUP BY service
-- quantile_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.service AS service, CASE WHEN (__r.latency_ms) IS NOT NULL THEN LEAST(GREATEST(__r.latency_ms, 0), 30000) END AS __v0, CASE WHEN (__r.bytes_out) IS NOT NULL THEN LEAST(GREATEST(__r.bytes_out, 0), 1000) END AS __v1 FROM requests AS __r),
__lists AS MATERIALIZED (SELECT __unit, service, hash(__unit, $salt, service) AS __h, list(CAST(CASE WHEN __v0 < 0.30000000000000004 THEN 1 ELSE LEAST(GREATEST(CAST(floor(ln(__v0 / 0.30000000000000004) / 0.05814608820692035) AS BIGINT) + 2, 2), 200) END AS UTINYINT)) FILTER (WHERE __v0 IS NOT NULL) AS __l0, list(CAST(LEAST(GREATEST(CAST(floor((__v1 - 0.0) / 5.025125628140704) AS BIGINT) + 1, 1), 200) AS UTINYINT)) FILTER (WHERE __v1 IS NOT NULL) AS __l1 FROM __base WHERE (service IN ('api', 'auth', 'checkout', 'search')) AND (__v0 IS NOT NULL OR __v1 IS NOT NULL) GROUP BY __unit, service),
__heavy AS (SELECT __unit FROM __lists GROUP BY __unit HAVING COUNT(*) > 2),
__cut AS (SELECT __unit, min(__h, 3) AS __c FROM __lists SEMI JOIN __heavy USING (__unit) GROUP BY __unit),
__capped AS (SELECT __lists.* FROM __lists LEFT JOIN __cut USING (__unit) WHERE __c IS NULL OR __h < __c[2] OR (__h = __c[2] AND __c[2] < __c[3])),
__sorted AS (SELECT service, __l0, CASE WHEN len(__l0) > 3 THEN list_sort(__l0) END AS __s0, CAST(hash(__unit, $salt, service, '__q0') % CAST(len(__l0) AS UBIGINT) AS BIGINT) AS __o0, __l1, CASE WHEN len(__l1) > 3 THEN list_sort(__l1) END AS __s1, CAST(hash(__unit, $salt, service, '__q1') % CAST(len(__l1) AS UBIGINT) AS BIGINT) AS __o1 FROM __capped),
__kept AS (SELECT service, CASE WHEN len(__l0) > 3 THEN list_transform(range(LEAST(len(__s0), 3)), lambda __j: __s0[1 + (__j * len(__s0) + __o0) // 3]) ELSE __l0 END AS __k0, CASE WHEN len(__l1) > 3 THEN list_transform(range(LEAST(len(__s1), 3)), lambda __j: __s1[1 + (__j * len(__s1) + __o1) // 3]) ELSE __l1 END AS __k1 FROM __sorted)
SELECT service, __qid, CAST(__b AS BIGINT) AS __bin, COUNT(*) AS __n FROM (SELECT service, '__q0' AS __qid, unnest(__k0) AS __b FROM __kept UNION ALL SELECT service, '__q1' AS __qid, unnest(__k1) AS __b FROM __kept) GROUP BY service, __qid, __b ORDER BY service, __qid, __bin
