-- Collector (0300-0399): applications drive their BKData flows (issue 18).
-- An application switches tail sampling (with the tail-sampling flow's own config keys: tail_percentage,
-- tail_trace_session_gap_min, tail_trace_mark_timeout, tail_conditions) and virtual metrics on or off;
-- registering, updating or deleting it queues the matching flow commands in the outbox below, in the
-- same transaction, and the collector publishes them on flow.commands (services/collector/flow-outbox.ts).
ALTER TABLE apm_application ADD COLUMN IF NOT EXISTS tail_sampling_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE apm_application ADD COLUMN IF NOT EXISTS tail_sampling_config jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE apm_application ADD COLUMN IF NOT EXISTS virtual_metric_enabled boolean NOT NULL DEFAULT false;
-- flow types a create_or_update was ever queued for: their BKData flows may exist, so deleting the
-- application queues a `delete` for each of them (and only for them)
ALTER TABLE apm_application ADD COLUMN IF NOT EXISTS provisioned_flows text[] NOT NULL DEFAULT '{}';

-- Flow commands waiting to be published (a transactional outbox, like bkdata_flow_outbox): `payload` is
-- the FlowCommand record as JSON (config as an object), `flow_key` its Kafka key bk_biz_id:app_name:flow_type.
-- A publisher claims rows (claimed_by/claimed_until), sends them, then deletes them.
CREATE TABLE IF NOT EXISTS apm_application_flow_outbox (
  id             bigserial PRIMARY KEY,
  flow_key       varchar(128) NOT NULL,
  payload        jsonb NOT NULL,
  claimed_by     varchar(128),
  claimed_until  timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now()
);
