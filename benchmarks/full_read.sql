-- The second access-log baseline of issue 10: both JSON access logs read into tables with every
-- column parsed (`count(*)` over read_json is no baseline: DuckDB skips parsing the values).
--
-- Inputs are DuckDB variables, as in benchmarks/handwritten.sql:
--   python benchmarks/sqlrun.py benchmarks/full_read.sql primary_log=p.json.log \
--       mirror_log=m.json.log

CREATE TABLE primary_side AS
    SELECT * FROM read_json(getvariable('primary_log'), format = 'newline_delimited');
CREATE TABLE mirror_side AS
    SELECT * FROM read_json(getvariable('mirror_log'), format = 'newline_delimited');
