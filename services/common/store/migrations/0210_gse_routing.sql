-- GSE data routing (issue 20): the registry the orchestrator keeps in the reference GSE's stead
-- (services/orchestrator/gse/, bk-monitor api/gse/default.py): receivers ("stream_to": a Kafka cluster's
-- addresses and SASL settings) and data id routes (channel_id → targets: a stream_to, a topic, maybe a
-- partition). Every change is published to the compacted topic <prefix>.gse.routes through the outbox
-- gse_routes_pending, written in the same transaction.

-- stream_to ids are allocated here (the reference's add_streamto answers the new id).
CREATE SEQUENCE gse_stream_to_id_seq START WITH 1;
-- channel ids allocated for add_route calls without metadata.channel_id (ids taken are skipped).
CREATE SEQUENCE gse_channel_id_seq START WITH 1500000;

CREATE TABLE gse_stream_to (
  stream_to_id   bigint PRIMARY KEY DEFAULT nextval('gse_stream_to_id_seq'),
  plat_name      varchar(64) NOT NULL,
  name           varchar(128) NOT NULL,
  report_mode    varchar(16) NOT NULL CHECK (report_mode = 'kafka'),
  data_log_path  text,
  label          jsonb,
  -- the Kafka settings without the password: storage_address, sasl_username, sasl_mechanisms, security_protocol
  kafka          jsonb NOT NULL,
  -- sealed by the orchestrator's SecretBox for 'gse_stream_to.sasl_passwd'; never plain, never returned
  sasl_passwd    text CHECK (sasl_passwd IS NULL OR sasl_passwd LIKE 'enc:v1:%'),
  operator       varchar(128) NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT gse_stream_to_name UNIQUE (plat_name, name)
);

CREATE TABLE gse_route (
  channel_id      bigint PRIMARY KEY CHECK (channel_id > 0),
  plat_name       varchar(64) NOT NULL,
  label           jsonb,
  -- the reference's stream_filters, kept and returned (publishers do not apply them)
  stream_filters  jsonb NOT NULL DEFAULT '[]',
  operator        varchar(128) NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One target of a route (an item of the reference's `route` list), in order; a stream_to that a route
-- names cannot be deleted (the foreign key refuses it).
CREATE TABLE gse_route_target (
  channel_id    bigint NOT NULL REFERENCES gse_route (channel_id) ON DELETE CASCADE,
  position      integer NOT NULL,
  name          varchar(128) NOT NULL,
  stream_to_id  bigint NOT NULL REFERENCES gse_stream_to (stream_to_id),
  -- the item as given: {name, stream_to: {stream_to_id, kafka: {topic_name, data_set?, biz_id?, partition?}}, filter_name_and?, filter_name_or?}
  item          jsonb NOT NULL,
  PRIMARY KEY (channel_id, position),
  CONSTRAINT gse_route_target_name UNIQUE (channel_id, name)
);
CREATE INDEX gse_route_target_stream_to ON gse_route_target (stream_to_id);

-- Keys of <prefix>.gse.routes to publish (stream_to:<id>, route:<channel_id>): written with each change,
-- deleted once the topic holds the key's current value (seq tells a newer change apart).
CREATE SEQUENCE gse_routes_pending_seq;
CREATE TABLE gse_routes_pending (
  key         varchar(64) PRIMARY KEY,
  seq         bigint NOT NULL DEFAULT nextval('gse_routes_pending_seq'),
  changed_at  timestamptz NOT NULL DEFAULT now()
);
