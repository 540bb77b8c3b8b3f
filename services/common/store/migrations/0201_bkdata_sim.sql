-- bkdata-sim (the local BKData stand-in) can keep its objects in the store (BKDATA_SIM_PERSIST=store),
-- so `bkstream up` restarts do not forget raw data, cleans and flows the orchestrator remembers.
CREATE TABLE bkdata_sim_object (
  kind       varchar(32) NOT NULL,
  id         varchar(255) NOT NULL,
  doc        jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, id)
);
