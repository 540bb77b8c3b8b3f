-- bkstream foundation schema (design.md §4). Columns follow ../shared/reference/bkmonitor-apm.md.
--
-- Discovered tables share one pattern: a generated `key_md5` over the natural key (the reference's "found
-- key"), unique per (bk_biz_id, app_name), so every write is an idempotent upsert
--   INSERT ... ON CONFLICT (bk_biz_id, app_name, key_md5) DO UPDATE SET last_seen = GREATEST(...)
-- A hash instead of a plain unique index because natural keys may reach 2 x 2048 characters, past what a
-- B-tree index entry holds. NULL and '' hash differently ('\N' marks NULL).
-- first_seen / last_seen are event times (span end_time), not wall-clock times.

CREATE TABLE apm_application (
  id                    bigserial PRIMARY KEY,
  bk_biz_id             bigint NOT NULL,
  app_name              varchar(50) NOT NULL,
  app_alias             varchar(255) NOT NULL DEFAULT '',
  description           text NOT NULL DEFAULT '',
  -- trace retention in days: discovered rows older than this are expired (reference default 7)
  trace_retention_days  integer NOT NULL DEFAULT 7 CHECK (trace_retention_days > 0),
  -- sha256 (hex) of the application token; the token itself is shown once and never stored
  token_hash            char(64) UNIQUE,
  -- first characters of the token, to recognise it in listings
  token_hint            varchar(16) NOT NULL DEFAULT '',
  traces_data_id        bigint NOT NULL DEFAULT 0,
  metrics_data_id       bigint NOT NULL DEFAULT 0,
  logs_data_id          bigint NOT NULL DEFAULT 0,
  profiles_data_id      bigint NOT NULL DEFAULT 0,
  is_enabled            boolean NOT NULL DEFAULT true,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT apm_application_natural_key UNIQUE (bk_biz_id, app_name)
);

-- Rule model of reference §1 (bk_biz_id = 0 and app_name = '' for global rules).
CREATE TABLE apm_discover_rule (
  id             bigserial PRIMARY KEY,
  bk_biz_id      bigint NOT NULL DEFAULT 0,
  app_name       varchar(128) NOT NULL DEFAULT '',
  category_id    varchar(128),
  endpoint_key   varchar(255),
  instance_key   varchar(255),
  topo_kind      varchar(50),
  predicate_key  varchar(128),
  sort           integer NOT NULL DEFAULT 0,
  type           varchar(32) NOT NULL DEFAULT 'category',
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT apm_discover_rule_natural_key UNIQUE NULLS NOT DISTINCT (bk_biz_id, app_name, type, category_id, predicate_key)
);

-- The 12 built-in global rules (reference §1.1).
INSERT INTO apm_discover_rule (bk_biz_id, app_name, type, category_id, topo_kind, predicate_key, instance_key, endpoint_key, sort) VALUES
  (0, '', 'category', 'db',            'component', 'attributes.db.system',            'attributes.db.system,attributes.net.peer.name,attributes.net.peer.ip,attributes.net.peer.port',        'span_name', 0),
  (0, '', 'category', 'messaging',     'component', 'attributes.messaging.system',     'attributes.messaging.system,attributes.net.peer.name,attributes.net.peer.ip,attributes.net.peer.port', 'span_name', 1),
  (0, '', 'category', 'async_backend', 'service',   'attributes.messaging.destination', 'resource.service.name', 'span_name', 2),
  (0, '', 'category', 'rpc',           'service',   'attributes.trpc.namespace',       'resource.service.name', 'span_name', 3),
  (0, '', 'category', 'rpc',           'service',   'attributes.rpc.system',           'resource.service.name', 'span_name', 4),
  (0, '', 'category', 'http',          'service',   'attributes.http.method',          'resource.service.name', 'span_name', 5),
  (0, '', 'category', 'other',         'service',   '',                                'resource.service.name', 'span_name', 6),
  (0, '', 'system',   'trpc',          'service',   'attributes.trpc.namespace',       'attributes.trpc.namespace', '', 0),
  (0, '', 'system',   'grpc',          'service',   'attributes.rpc.system',           'attributes.rpc.system',     '', 1),
  (0, '', 'platform', 'k8s',           'service',   'resource.k8s.bcs.cluster.id,resource.k8s.pod.name,resource.k8s.namespace.name', 'resource.k8s.bcs.cluster.id,resource.k8s.pod.name,resource.k8s.namespace.name', '', 0),
  (0, '', 'platform', 'node',          'service',   'resource.net.host.ip',            'resource.net.host.ip', '', 1),
  (0, '', 'sdk',      '',              'service',   'resource.telemetry.sdk.name',     'resource.target',      '', 0);

-- Endpoint (reference §3.1).
CREATE TABLE apm_endpoint (
  id                   bigserial PRIMARY KEY,
  bk_biz_id            bigint NOT NULL,
  app_name             varchar(50) NOT NULL,
  endpoint_name        varchar(2048) NOT NULL,
  service_name         varchar(2048) NOT NULL,
  category_id          varchar(128) NOT NULL,
  category_kind_key    varchar(255) NOT NULL DEFAULT '',
  category_kind_value  varchar(255) NOT NULL DEFAULT '',
  span_kind            integer NOT NULL,
  extra_data           text,
  first_seen           timestamptz NOT NULL,
  last_seen            timestamptz NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  key_md5              uuid GENERATED ALWAYS AS (md5(
    endpoint_name || chr(31) || service_name || chr(31) || category_id || chr(31) ||
    category_kind_key || chr(31) || category_kind_value || chr(31) || span_kind::text)::uuid) STORED,
  CONSTRAINT apm_endpoint_natural_key UNIQUE (bk_biz_id, app_name, key_md5)
);
CREATE INDEX apm_endpoint_last_seen ON apm_endpoint (bk_biz_id, app_name, last_seen);

-- HostInstance (reference §3.2, §5). bk_cloud_id -1 / bk_host_id NULL when the IP is not in cmdb_host.
CREATE TABLE apm_host_instance (
  id             bigserial PRIMARY KEY,
  bk_biz_id      bigint NOT NULL,
  app_name       varchar(50) NOT NULL,
  bk_cloud_id    integer,
  bk_host_id     bigint,
  ip             varchar(1024) NOT NULL,
  topo_node_key  varchar(255) NOT NULL,
  first_seen     timestamptz NOT NULL,
  last_seen      timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  key_md5        uuid GENERATED ALWAYS AS (md5(
    coalesce(bk_cloud_id::text, '\N') || chr(31) || coalesce(bk_host_id::text, '\N') || chr(31) ||
    ip || chr(31) || topo_node_key)::uuid) STORED,
  CONSTRAINT apm_host_instance_natural_key UNIQUE (bk_biz_id, app_name, key_md5)
);
CREATE INDEX apm_host_instance_last_seen ON apm_host_instance (bk_biz_id, app_name, last_seen);

-- TopoInstance (reference §3.3): service instances and component instances.
CREATE TABLE apm_topo_instance (
  id                                  bigserial PRIMARY KEY,
  bk_biz_id                           bigint NOT NULL,
  app_name                            varchar(50) NOT NULL,
  topo_node_key                       varchar(255) NOT NULL,
  instance_id                         varchar(255) NOT NULL,
  instance_topo_kind                  varchar(255) NOT NULL,
  component_instance_category         varchar(255),
  component_instance_predicate_value  varchar(255),
  sdk_name                            varchar(255),
  sdk_version                         varchar(255),
  sdk_language                        varchar(255),
  first_seen                          timestamptz NOT NULL,
  last_seen                           timestamptz NOT NULL,
  created_at                          timestamptz NOT NULL DEFAULT now(),
  updated_at                          timestamptz NOT NULL DEFAULT now(),
  key_md5                             uuid GENERATED ALWAYS AS (md5(
    topo_node_key || chr(31) || instance_id || chr(31) || instance_topo_kind || chr(31) ||
    coalesce(component_instance_category, '\N') || chr(31) || coalesce(component_instance_predicate_value, '\N') || chr(31) ||
    coalesce(sdk_name, '\N') || chr(31) || coalesce(sdk_version, '\N') || chr(31) || coalesce(sdk_language, '\N'))::uuid) STORED,
  CONSTRAINT apm_topo_instance_natural_key UNIQUE (bk_biz_id, app_name, key_md5)
);
CREATE INDEX apm_topo_instance_last_seen ON apm_topo_instance (bk_biz_id, app_name, last_seen);

-- TopoNode (reference §3.4): one row per topo key; JSON columns are merged by the discoverer.
CREATE TABLE apm_topo_node (
  id            bigserial PRIMARY KEY,
  bk_biz_id     bigint NOT NULL,
  app_name      varchar(50) NOT NULL,
  topo_key      varchar(255) NOT NULL,
  extra_data    jsonb NOT NULL DEFAULT '{}',
  system        jsonb NOT NULL DEFAULT '[]',
  platform      jsonb NOT NULL DEFAULT '{}',
  sdk           jsonb NOT NULL DEFAULT '[]',
  source        jsonb NOT NULL DEFAULT '[]',
  is_permanent  boolean NOT NULL DEFAULT false,
  first_seen    timestamptz NOT NULL,
  last_seen     timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT apm_topo_node_natural_key UNIQUE (bk_biz_id, app_name, topo_key)
);
CREATE INDEX apm_topo_node_last_seen ON apm_topo_node (bk_biz_id, app_name, last_seen);

-- TopoRelation (reference §3.5).
CREATE TABLE apm_topo_relation (
  id                    bigserial PRIMARY KEY,
  bk_biz_id             bigint NOT NULL,
  app_name              varchar(50) NOT NULL,
  from_topo_key         varchar(255) NOT NULL,
  to_topo_key           varchar(255) NOT NULL,
  kind                  varchar(50) NOT NULL,
  to_topo_key_kind      varchar(255) NOT NULL,
  to_topo_key_category  varchar(255) NOT NULL,
  first_seen            timestamptz NOT NULL,
  last_seen             timestamptz NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  key_md5               uuid GENERATED ALWAYS AS (md5(
    from_topo_key || chr(31) || to_topo_key || chr(31) || kind || chr(31) || to_topo_key_kind || chr(31) || to_topo_key_category)::uuid) STORED,
  CONSTRAINT apm_topo_relation_natural_key UNIQUE (bk_biz_id, app_name, key_md5)
);
CREATE INDEX apm_topo_relation_last_seen ON apm_topo_relation (bk_biz_id, app_name, last_seen);

-- RemoteServiceRelation (reference §3.6).
CREATE TABLE apm_remote_service_relation (
  id                  bigserial PRIMARY KEY,
  bk_biz_id           bigint NOT NULL,
  app_name            varchar(50) NOT NULL,
  topo_node_key       varchar(255) NOT NULL,
  from_endpoint_name  varchar(2048) NOT NULL,
  category            varchar(128) NOT NULL,
  first_seen          timestamptz NOT NULL,
  last_seen           timestamptz NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  key_md5             uuid GENERATED ALWAYS AS (md5(
    topo_node_key || chr(31) || from_endpoint_name || chr(31) || category)::uuid) STORED,
  CONSTRAINT apm_remote_service_relation_natural_key UNIQUE (bk_biz_id, app_name, key_md5)
);
CREATE INDEX apm_remote_service_relation_last_seen ON apm_remote_service_relation (bk_biz_id, app_name, last_seen);

-- RootEndpoint (reference §3.7).
CREATE TABLE apm_root_endpoint (
  id             bigserial PRIMARY KEY,
  bk_biz_id      bigint NOT NULL,
  app_name       varchar(50) NOT NULL,
  endpoint_name  varchar(2048) NOT NULL,
  service_name   varchar(2048) NOT NULL,
  category_id    varchar(128) NOT NULL,
  first_seen     timestamptz NOT NULL,
  last_seen      timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  key_md5        uuid GENERATED ALWAYS AS (md5(
    endpoint_name || chr(31) || service_name || chr(31) || category_id)::uuid) STORED,
  CONSTRAINT apm_root_endpoint_natural_key UNIQUE (bk_biz_id, app_name, key_md5)
);
CREATE INDEX apm_root_endpoint_last_seen ON apm_root_endpoint (bk_biz_id, app_name, last_seen);

-- Hosts reported by agents (static host info on the events topic); replaces the reference's CMDB Redis
-- cache for host discovery (reference §5). One row per (cloud, ip).
CREATE TABLE cmdb_host (
  id           bigserial PRIMARY KEY,
  bk_biz_id    bigint NOT NULL,
  bk_cloud_id  integer NOT NULL,
  bk_host_id   bigint,
  ip           varchar(64) NOT NULL,
  hostname     varchar(255) NOT NULL DEFAULT '',
  bk_agent_id  varchar(128) NOT NULL DEFAULT '',
  first_seen   timestamptz NOT NULL,
  last_seen    timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT cmdb_host_natural_key UNIQUE (bk_cloud_id, ip)
);
CREATE INDEX cmdb_host_biz_ip ON cmdb_host (bk_biz_id, ip);

-- BKData flows (reference §6.2) as persisted state machines, one per (biz, app, flow type) — the
-- reference keys by (biz, app) only, a quirk we do not keep.
CREATE TABLE bkdata_flow (
  id                             bigserial PRIMARY KEY,
  bk_biz_id                      bigint NOT NULL,
  app_name                       varchar(50) NOT NULL,
  flow_type                      varchar(32) NOT NULL,
  -- desired state: running (create_or_update), stopped, deleted
  desired                        varchar(16) NOT NULL DEFAULT 'running',
  config                         jsonb NOT NULL DEFAULT '{}',
  command_id                     varchar(128) NOT NULL DEFAULT '',
  status                         varchar(64) NOT NULL DEFAULT 'pending',
  step                           varchar(64) NOT NULL DEFAULT '',
  attempt                        integer NOT NULL DEFAULT 0,
  next_attempt_at                timestamptz,
  is_finished                    boolean NOT NULL DEFAULT false,
  finished_time                  timestamptz,
  project_id                     bigint,
  deploy_bk_biz_id               bigint,
  deploy_data_id                 bigint,
  deploy_config                  jsonb,
  databus_clean_id               bigint,
  databus_clean_config           jsonb,
  databus_clean_result_table_id  varchar(255),
  flow_id                        bigint,
  state                          jsonb NOT NULL DEFAULT '{}',
  process_info                   jsonb NOT NULL DEFAULT '[]',
  last_process_time              timestamptz,
  lease_owner                    varchar(128),
  lease_expires_at               timestamptz,
  created_at                     timestamptz NOT NULL DEFAULT now(),
  updated_at                     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT bkdata_flow_natural_key UNIQUE (bk_biz_id, app_name, flow_type)
);
CREATE INDEX bkdata_flow_runnable ON bkdata_flow (is_finished, next_attempt_at);

CREATE TABLE bkdata_flow_step (
  id           bigserial PRIMARY KEY,
  flow_id      bigint NOT NULL REFERENCES bkdata_flow (id) ON DELETE CASCADE,
  step         varchar(64) NOT NULL,
  status       varchar(64) NOT NULL,
  attempt      integer NOT NULL DEFAULT 0,
  message      text NOT NULL DEFAULT '',
  api_calls    integer NOT NULL DEFAULT 0,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);
CREATE INDEX bkdata_flow_step_flow ON bkdata_flow_step (flow_id, id);
