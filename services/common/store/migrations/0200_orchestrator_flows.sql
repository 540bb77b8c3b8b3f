-- Orchestrator (issue 4): what the durable flow state machine needs beyond 0001's bkdata_flow / bkdata_flow_step.

-- Who asked, when (commands older than the one applied are stale), the last step message, and which
-- BKData API family a flow in `waiting_dependency` waits for (its breaker is open).
ALTER TABLE bkdata_flow
  ADD COLUMN operator             varchar(128) NOT NULL DEFAULT '',
  ADD COLUMN command_requested_at bigint NOT NULL DEFAULT 0,
  ADD COLUMN message              text NOT NULL DEFAULT '',
  ADD COLUMN waiting_on           varchar(32);

-- Workers claim flows whose next attempt is due; idle and terminal flows have no next attempt.
CREATE INDEX bkdata_flow_due ON bkdata_flow (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX bkdata_flow_waiting ON bkdata_flow (waiting_on) WHERE waiting_on IS NOT NULL;

-- The step log records one row per step attempt: who ran it, for which command.
ALTER TABLE bkdata_flow_step
  ADD COLUMN owner      varchar(128) NOT NULL DEFAULT '',
  ADD COLUMN command_id varchar(128) NOT NULL DEFAULT '';
CREATE INDEX bkdata_flow_step_finished ON bkdata_flow_step (finished_at);

-- Command ids already seen (a repeated id is ignored), pruned after the command topic's retention.
CREATE TABLE bkdata_flow_command (
  command_id  varchar(128) PRIMARY KEY,
  flow_key    varchar(200) NOT NULL,
  outcome     varchar(16) NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bkdata_flow_command_received ON bkdata_flow_command (received_at);

-- Transactional outbox of flow.status records: written in the transaction of the transition, sent to
-- Kafka by the publisher, deleted once acknowledged. A claim keeps two publishers off the same rows.
CREATE TABLE bkdata_flow_outbox (
  id            bigserial PRIMARY KEY,
  flow_key      varchar(200) NOT NULL,
  payload       jsonb NOT NULL,
  claimed_by    varchar(128),
  claimed_until timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
