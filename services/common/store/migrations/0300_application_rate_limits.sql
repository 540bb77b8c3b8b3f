-- Collector (0300-0399): per-application rate limits of the OTLP trace receiver.
-- NULL means "the receiver's default" (RECEIVER_RATE_LIMIT_QPS / RECEIVER_RATE_LIMIT_BURST).
-- qps 0 = unlimited, qps < 0 = reject everything (as the reference token_bucket limiter).
ALTER TABLE apm_application ADD COLUMN IF NOT EXISTS rate_limit_qps integer;
ALTER TABLE apm_application ADD COLUMN IF NOT EXISTS rate_limit_burst integer CHECK (rate_limit_burst IS NULL OR rate_limit_burst >= 0);
