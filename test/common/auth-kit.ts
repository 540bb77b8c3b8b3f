/**
 * Credentials for tests (SECURITY.md): an admin token the services under test accept through
 * BKSTREAM_ADMIN_TOKEN, and the headers that carry a token.
 */

/** The admin token test services are configured with (BKSTREAM_ADMIN_TOKEN; at least 32 characters). */
export const TEST_ADMIN_TOKEN = 'bkadm_test-admin-token-0123456789abcdefghijklmnop';

/** `{ BKSTREAM_ADMIN_TOKEN }` for a service's environment. */
export const ADMIN_ENV = { BKSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN } as const;

/** `Authorization: Bearer <token>` (the admin token by default), plus any other headers. */
export function bearer(token: string = TEST_ADMIN_TOKEN, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${token}`, ...extra };
}

/** Headers of a JSON request with a token. */
export function jsonHeaders(token: string = TEST_ADMIN_TOKEN): Record<string, string> {
  return bearer(token, { 'content-type': 'application/json' });
}
