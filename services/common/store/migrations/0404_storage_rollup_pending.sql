-- Storage (0400-0499): rollup pieces waiting to be folded into storage_span_minute.
--
-- The PostgreSQL span writer's common path (every span of a write new) appends its per-minute rollup
-- pieces here — a plain insert, no index, no conflict to resolve — instead of merging them into
-- storage_span_minute row by row; the storage service folds them in every STORAGE_ROLLUP_FOLD_INTERVAL_MS
-- (one statement: the pieces deleted, merged per key, merged into the minutes). The aggregation API reads
-- both tables, so what a write added is visible as soon as it committed. Same columns and meaning as
-- storage_span_minute; several rows may hold the same key.
CREATE TABLE storage_span_minute_pending (
  bk_biz_id       bigint NOT NULL,
  app_name        text NOT NULL,
  retention_days  integer NOT NULL,
  minute          bigint NOT NULL,
  service_name    text NOT NULL,
  span_name       text NOT NULL,
  kind            smallint NOT NULL,
  span_count      integer NOT NULL,
  error_count     integer NOT NULL,
  elapsed_sum     numeric NOT NULL,
  elapsed_min     bigint NOT NULL,
  elapsed_max     bigint NOT NULL,
  buckets         smallint[] NOT NULL,
  counts          integer[] NOT NULL
);
