-- Storage (0400-0499): per-minute RED rollups of spans (services/storage/rollup.ts).
--
-- One row per application, retention class, service, span name, kind and minute of end time (µs of the
-- minute's start): span count, error count, sum/min/max of elapsed_time and a sparse log-bucket histogram
-- of elapsed_time (bucket indexes ascending in `buckets`, their counts in `counts`; bucket i > 0 holds
-- [γ^(i-1), γ^i) µs with γ = 2^(1/16), 0 holds 0, -i the negative durations mirrored). The span writer
-- merges into them the spans it inserted, in the same statement; the aggregation API answers RED views
-- over whole minutes from them. Partitioned like storage_span (LIST on retention_days, then RANGE by day
-- of `minute`, created and dropped by services/storage/partitions.ts as storage_span_minute_r<days>_p<yyyymmdd>).

-- 16 / ln(2) = 23.083120654223414: floor(16 * log2(|e|)) + 1, signed; 0 for 0.
CREATE FUNCTION storage_latency_bucket(e bigint) RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN e > 0 THEN floor(ln(e::float8) * 23.083120654223414)::integer + 1
    WHEN e < 0 THEN -(floor(ln(-(e::float8)) * 23.083120654223414)::integer + 1)
    ELSE 0
  END
$$;

CREATE TABLE storage_span_minute (
  bk_biz_id       bigint NOT NULL,
  app_name        text NOT NULL,
  retention_days  integer NOT NULL,
  -- µs since the epoch of the minute's start (end_time floored to the minute)
  minute          bigint NOT NULL,
  service_name    text NOT NULL,
  span_name       text NOT NULL,
  kind            smallint NOT NULL,
  span_count      integer NOT NULL,
  error_count     integer NOT NULL,
  -- µs
  elapsed_sum     numeric NOT NULL,
  elapsed_min     bigint NOT NULL,
  elapsed_max     bigint NOT NULL,
  buckets         smallint[] NOT NULL,
  counts          integer[] NOT NULL,
  CONSTRAINT storage_span_minute_key PRIMARY KEY (bk_biz_id, app_name, minute, service_name, span_name, kind, retention_days)
) PARTITION BY LIST (retention_days);

-- Rollups of the spans stored before this migration: one partition per span day partition, filled from it.
DO $$
DECLARE
  part record;
  days integer;
  yyyymmdd text;
  lo bigint;
  parent text;
  child text;
BEGIN
  FOR part IN
    SELECT c.relname FROM pg_class c
    WHERE c.relkind = 'r' AND pg_table_is_visible(c.oid) AND c.relname ~ '^storage_span_r[0-9]+_p[0-9]{8}$'
    ORDER BY c.relname
  LOOP
    days := substring(part.relname FROM '^storage_span_r([0-9]+)_p')::integer;
    yyyymmdd := substring(part.relname FROM '_p([0-9]{8})$');
    lo := (extract(epoch FROM to_date(yyyymmdd, 'YYYYMMDD')::timestamp) * 1000000)::bigint;
    parent := 'storage_span_minute_r' || days;
    child := parent || '_p' || yyyymmdd;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF storage_span_minute FOR VALUES IN (%s) PARTITION BY RANGE (minute)', parent, days);
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%s) TO (%s)', child, parent, lo, lo + 86400000000);
    EXECUTE format(
      'INSERT INTO %I (bk_biz_id, app_name, retention_days, service_name, span_name, kind, minute, span_count, error_count, elapsed_sum, elapsed_min, elapsed_max, buckets, counts)
       SELECT bk_biz_id, app_name, retention_days, service_name, span_name, kind, minute, sum(n)::int, sum(errors)::int, sum(total), min(lo), max(hi),
         array_agg(bucket::smallint ORDER BY bucket), array_agg(n ORDER BY bucket)
       FROM (
         SELECT bk_biz_id, app_name, retention_days, service_name, span_name, kind,
           end_time - ((end_time %% 60000000) + 60000000) %% 60000000 AS minute, storage_latency_bucket(elapsed_time) AS bucket,
           count(*)::int AS n, (count(*) FILTER (WHERE status_code = 2))::int AS errors, sum(elapsed_time) AS total, min(elapsed_time) AS lo, max(elapsed_time) AS hi
         FROM %I GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
       ) b
       GROUP BY bk_biz_id, app_name, retention_days, service_name, span_name, kind, minute',
      child, part.relname);
  END LOOP;
END $$;
