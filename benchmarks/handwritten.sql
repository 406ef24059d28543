-- The access-log baseline of issue 10: what an analyst writes by hand instead of shadowdiff.
-- It reads both JSON access logs, full-outer-joins them on request_id, derives an outcome from
-- the status codes and an endpoint by regexp_replace, computes per-endpoint quantile_cont of the
-- durations, and COPYs the pairs, the latency table and both sides to Parquet.
--
-- Inputs are DuckDB variables; set them first. With the duckdb CLI:
--   duckdb -c "SET VARIABLE primary_log = 'p.json.log'; SET VARIABLE mirror_log = 'm.json.log';
--              SET VARIABLE out_dir = 'out/handwritten'" -c ".read benchmarks/handwritten.sql"
-- With only the Python module (as benchmarks/run.py does):
--   python benchmarks/sqlrun.py benchmarks/handwritten.sql primary_log=p.json.log \
--       mirror_log=m.json.log out_dir=out/handwritten
-- out_dir must exist.

CREATE TABLE primary_side AS
    SELECT * FROM read_json(getvariable('primary_log'), format = 'newline_delimited');
CREATE TABLE mirror_side AS
    SELECT * FROM read_json(getvariable('mirror_log'), format = 'newline_delimited');

CREATE TABLE pairs AS
SELECT
    coalesce(p.request_id, m.request_id) AS request_id,
    coalesce(p.method, m.method) || ' '
        || regexp_replace(split_part(coalesce(p.path, m.path), '?', 1), '/[0-9]+', '/{id}', 'g')
        AS endpoint,
    coalesce(p.method, m.method) AS method,
    coalesce(p.path, m.path) AS path,
    CASE
        WHEN m.request_id IS NULL THEN 'primary_only'
        WHEN p.request_id IS NULL THEN 'mirror_only'
        WHEN p.response_code = m.response_code THEN 'match'
        ELSE 'diverged'
    END AS outcome,
    TRY_CAST(p.response_code AS INTEGER) AS primary_status,
    TRY_CAST(m.response_code AS INTEGER) AS mirror_status,
    TRY_CAST(p.duration AS DOUBLE) AS primary_duration_ms,
    TRY_CAST(m.duration AS DOUBLE) AS mirror_duration_ms,
    TRY_CAST(m.duration AS DOUBLE) - TRY_CAST(p.duration AS DOUBLE) AS latency_delta_ms
FROM primary_side p
FULL OUTER JOIN mirror_side m ON p.request_id = m.request_id;

CREATE TABLE latency AS
WITH durations AS (
    SELECT endpoint, 'primary' AS side, primary_duration_ms AS ms
    FROM pairs WHERE primary_duration_ms IS NOT NULL AND mirror_duration_ms IS NOT NULL
    UNION ALL
    SELECT endpoint, 'mirror' AS side, mirror_duration_ms AS ms
    FROM pairs WHERE primary_duration_ms IS NOT NULL AND mirror_duration_ms IS NOT NULL
)
SELECT
    endpoint,
    side,
    count(*) AS count,
    quantile_cont(ms, 0.5) AS p50,
    quantile_cont(ms, 0.9) AS p90,
    quantile_cont(ms, 0.99) AS p99,
    quantile_cont(ms, 0.999) AS p999,
    avg(ms) AS mean,
    max(ms) AS max
FROM durations
GROUP BY endpoint, side
ORDER BY endpoint, side;

COPY pairs TO (getvariable('out_dir') || '/pairs.parquet') (FORMAT parquet);
COPY latency TO (getvariable('out_dir') || '/latency.parquet') (FORMAT parquet);
COPY primary_side TO (getvariable('out_dir') || '/primary.parquet') (FORMAT parquet);
COPY mirror_side TO (getvariable('out_dir') || '/mirror.parquet') (FORMAT parquet);
