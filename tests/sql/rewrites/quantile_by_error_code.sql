-- input
SELECT error_code, median(bytes_out) AS m FROM requests WHERE status >= 500 GROUP BY error_code
-- bounded_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.error_code AS error_code FROM requests AS __r WHERE __r.status >= 500),
__per_unit AS MATERIALIZED (SELECT __unit, error_code, hash(__unit, $salt, error_code) AS __h FROM __base GROUP BY __unit, error_code),
__heavy AS (SELECT __unit FROM __per_unit GROUP BY __unit HAVING COUNT(*) > 2),
__cut AS (SELECT __unit, min(__h, 3) AS __c FROM __per_unit SEMI JOIN __heavy USING (__unit) GROUP BY __unit),
__capped AS (SELECT __per_unit.* FROM __per_unit LEFT JOIN __cut USING (__unit) WHERE __c IS NULL OR __h < __c[2] OR (__h = __c[2] AND __c[2] < __c[3]))
SELECT error_code, COUNT(*) AS __units FROM __capped GROUP BY error_code ORDER BY error_code
-- quantile_sql
WITH __base AS (SELECT hash(__r.user_id) AS __unit, __r.error_code AS error_code, CASE WHEN (__r.bytes_out) IS NOT NULL THEN LEAST(GREATEST(__r.bytes_out, 0), 1000) END AS __v0 FROM requests AS __r WHERE __r.status >= 500),
__lists AS MATERIALIZED (SELECT __unit, error_code, hash(__unit, $salt, error_code) AS __h, list(CAST(LEAST(GREATEST(CAST(floor((__v0 - 0.0) / 5.025125628140704) AS BIGINT) + 1, 1), 200) AS UTINYINT)) AS __l0 FROM __base WHERE __v0 IS NOT NULL GROUP BY __unit, error_code),
__heavy AS (SELECT __unit FROM __lists GROUP BY __unit HAVING COUNT(*) > 2),
__cut AS (SELECT __unit, min(__h, 3) AS __c FROM __lists SEMI JOIN __heavy USING (__unit) GROUP BY __unit),
__capped AS (SELECT __lists.* FROM __lists LEFT JOIN __cut USING (__unit) WHERE __c IS NULL OR __h < __c[2] OR (__h = __c[2] AND __c[2] < __c[3])),
__sorted AS (SELECT error_code, __l0, CASE WHEN len(__l0) > 3 THEN list_sort(__l0) END AS __s0, CAST(hash(__unit, $salt, error_code, '__q0') % CAST(len(__l0) AS UBIGINT) AS BIGINT) AS __o0 FROM __capped),
__kept AS (SELECT error_code, CASE WHEN len(__l0) > 3 THEN list_transform(range(LEAST(len(__s0), 3)), lambda __j: __s0[1 + (__j * len(__s0) + __o0) // 3]) ELSE __l0 END AS __k0 FROM __sorted)
SELECT error_code, __qid, CAST(__b AS BIGINT) AS __bin, COUNT(*) AS __n FROM (SELECT error_code, '__q0' AS __qid, unnest(__k0) AS __b FROM __kept) GROUP BY error_code, __qid, __b ORDER BY error_code, __qid, __bin
