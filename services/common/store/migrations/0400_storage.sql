-- Storage (0400-0499): spans, per-trace summaries, agent metric series and samples, agent events.
--
-- Spans and trace summaries are partitioned twice: by LIST on retention_days (the application's
-- trace_retention_days when the row was written: apps with the same retention share partitions), then
-- by RANGE on a day of event time (µs since the epoch). Retention drops a whole day partition of a
-- retention class once the day is past it; nothing is ever deleted row by row. Samples and events are
-- partitioned by day (ms) under one retention each. The storage service creates the partitions (ahead of
-- time, and on demand for a row's day) and drops them: see services/storage/partitions.ts.
-- A partition is named <parent>_r<days>_p<yyyymmdd> (spans, traces) or <parent>_p<yyyymmdd>.

CREATE TABLE storage_span (
  bk_biz_id       bigint NOT NULL,
  app_name        text NOT NULL,
  retention_days  integer NOT NULL,
  trace_id        text NOT NULL,
  span_id         text NOT NULL,
  parent_span_id  text NOT NULL,
  span_name       text NOT NULL,
  kind            smallint NOT NULL,
  -- µs since the epoch
  start_time      bigint NOT NULL,
  end_time        bigint NOT NULL,
  -- µs
  elapsed_time    bigint NOT NULL,
  status_code     smallint NOT NULL,
  status_message  text NOT NULL,
  trace_state     text NOT NULL,
  -- resource['service.name'] ('' when absent)
  service_name    text NOT NULL,
  -- http, rpc, db, messaging, async_backend or other (from the span's attributes)
  category        text NOT NULL,
  attributes      jsonb NOT NULL,
  resource        jsonb NOT NULL,
  events          jsonb NOT NULL,
  links           jsonb NOT NULL,
  client_ip       text NOT NULL,
  -- one row per span: a replayed span (same ids, same end time) is not stored twice
  CONSTRAINT storage_span_key PRIMARY KEY (trace_id, span_id, bk_biz_id, app_name, end_time, retention_days)
) PARTITION BY LIST (retention_days);
CREATE INDEX storage_span_service_time ON storage_span (bk_biz_id, app_name, service_name, end_time);
CREATE INDEX storage_span_end_time ON storage_span USING brin (end_time);
CREATE INDEX storage_span_attributes ON storage_span USING gin (attributes jsonb_path_ops);

-- One row per trace, merged as its spans arrive (in pieces, over minutes). anchor_time is the first
-- piece's earliest start: the partition key, never updated.
CREATE TABLE storage_trace (
  bk_biz_id                 bigint NOT NULL,
  app_name                  text NOT NULL,
  retention_days            integer NOT NULL,
  anchor_time               bigint NOT NULL,
  trace_id                  text NOT NULL,
  min_start_time            bigint NOT NULL,
  max_end_time              bigint NOT NULL,
  trace_duration            bigint GENERATED ALWAYS AS (max_end_time - min_start_time) STORED,
  span_count                integer NOT NULL,
  error_count               integer NOT NULL,
  error                     boolean GENERATED ALWAYS AS (error_count > 0) STORED,
  services                  text[] NOT NULL,
  service_count             integer GENERATED ALWAYS AS (cardinality(services)) STORED,
  span_max_duration         bigint NOT NULL,
  span_min_duration         bigint NOT NULL,
  -- the root span: a span without a parent (the earliest if several), else the earliest span
  root_span_id              text NOT NULL,
  root_span_name            text NOT NULL,
  root_span_service         text NOT NULL,
  root_span_kind            smallint NOT NULL,
  root_span_has_parent      boolean NOT NULL,
  root_span_start           bigint NOT NULL,
  -- the entry service: the earliest SERVER or CONSUMER span (NULL while none arrived)
  root_service              text,
  root_service_span_id      text,
  root_service_span_name    text,
  root_service_kind         smallint,
  root_service_status_code  integer,
  root_service_category     text,
  root_service_start        bigint,
  cat_http                  integer NOT NULL,
  cat_rpc                   integer NOT NULL,
  cat_db                    integer NOT NULL,
  cat_messaging             integer NOT NULL,
  cat_async_backend         integer NOT NULL,
  cat_other                 integer NOT NULL,
  kind_unspecified          integer NOT NULL,
  kind_interval             integer NOT NULL,
  kind_sync                 integer NOT NULL,
  kind_async                integer NOT NULL,
  updated_at                timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT storage_trace_key PRIMARY KEY (bk_biz_id, app_name, trace_id, retention_days, anchor_time)
) PARTITION BY LIST (retention_days);
CREATE INDEX storage_trace_start ON storage_trace (bk_biz_id, app_name, min_start_time);
CREATE INDEX storage_trace_root_service ON storage_trace (bk_biz_id, app_name, root_service, min_start_time);

-- A metric series: a name and a label set, identified by a 63-bit hash of both (services/storage/series.ts).
CREATE TABLE storage_metric_series (
  series_id   bigint PRIMARY KEY,
  name        text NOT NULL,
  labels      jsonb NOT NULL,
  bk_biz_id   bigint NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX storage_metric_series_name ON storage_metric_series (name);
CREATE INDEX storage_metric_series_labels ON storage_metric_series USING gin (labels jsonb_path_ops);

CREATE TABLE storage_metric_sample (
  series_id  bigint NOT NULL,
  -- ms since the epoch
  ts         bigint NOT NULL,
  value      double precision NOT NULL,
  CONSTRAINT storage_metric_sample_key PRIMARY KEY (series_id, ts)
) PARTITION BY RANGE (ts);

-- Agent events (uptime checks, keyword, exceptions, heartbeats, basereport, ...), by type and time.
-- event_id is a 63-bit hash of the record's bytes, so a replayed event is stored once.
CREATE TABLE storage_event (
  event_id     bigint NOT NULL,
  -- ms since the epoch
  ts           bigint NOT NULL,
  event_type   text NOT NULL,
  data_id      bigint NOT NULL,
  bk_biz_id    bigint NOT NULL,
  task_id      bigint NOT NULL,
  status       integer NOT NULL,
  ip           text NOT NULL,
  bk_cloud_id  bigint NOT NULL,
  bk_host_id   bigint NOT NULL,
  hostname     text NOT NULL,
  dimensions   jsonb NOT NULL,
  metrics      jsonb NOT NULL,
  body         jsonb NOT NULL,
  CONSTRAINT storage_event_key PRIMARY KEY (event_id, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX storage_event_type_time ON storage_event (event_type, ts);
CREATE INDEX storage_event_biz_time ON storage_event (bk_biz_id, ts);
