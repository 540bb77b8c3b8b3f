/**
 * The key a publisher opens GSE receivers' SASL passwords with: the registry (orchestrator) seals them
 * with its key (BKSTREAM_SECRET_KEY, or `${DATA_DIR}/secret.key`), so a publisher needs the same key. A
 * publisher never creates a key of its own: without one, receivers with a password are used without it
 * (the route watcher warns once per receiver).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { secretBoxOf, type SecretBox, type SecretKeySettings } from '../secrets.ts';

/** The doc of a publisher's BKSTREAM_SECRET_KEY (its config table). */
export const GSE_KEY_DOC = 'the orchestrator\'s secret key (the same value): opens the SASL passwords of GSE receivers; unset: `${DATA_DIR}/secret.key` if it exists (`bkstream up` shares it), else receivers with a password are used without it (warned)';

/** The box of the configured key, or of an existing `${DATA_DIR}/secret.key`; undefined without either. */
export function routeSecretBox(c: SecretKeySettings): SecretBox | undefined {
  if (!c.secretKey && !c.secretKeyFile && !existsSync(join(c.dataDir, 'secret.key'))) return undefined;
  return secretBoxOf(c);
}
