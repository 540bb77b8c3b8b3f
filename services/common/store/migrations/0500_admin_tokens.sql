-- Security (issue 16): admin tokens. Like application tokens, a token is shown once (`bkstream admin
-- token`, or the bootstrap token `bkstream up` prints on its first run) and only its SHA-256 is kept.
-- Revoked tokens stay listed (revoked_at) so the audit trail survives; last_used_at tells an operator
-- rotating tokens whether an old one is still in use.
CREATE TABLE bkstream_admin_token (
  id            bigserial PRIMARY KEY,
  name          varchar(64) NOT NULL,
  -- sha256 (hex) of the token
  token_hash    char(64) NOT NULL UNIQUE,
  -- first characters of the token, to recognise it in listings
  token_hint    varchar(16) NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz
);
