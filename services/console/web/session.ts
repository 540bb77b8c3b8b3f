/**
 * The signed-in token. It lives in `sessionStorage`, never in `localStorage`: sessionStorage belongs to
 * this tab and this origin only, survives a reload of the tab (so a refresh does not sign you out) and is
 * gone when the tab closes; nothing sends it anywhere by itself (it is not a cookie — each API call adds
 * it as `Authorization: Bearer …`, so another site cannot make the browser use it). A script running in
 * the page could read it, as it could read memory: the console's Content-Security-Policy allows only its
 * own bundled scripts.
 */

/** Who the token speaks for: the admin (every application), or one application. */
export type Scope = { kind: 'admin' } | { kind: 'app'; bkBizId: number; appName: string };

export interface Session {
  token: string;
  scope: Scope;
}

const KEY = 'bkstream.console.session';

export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    if (!raw) return undefined;
    const s = JSON.parse(raw) as Partial<Session>;
    if (typeof s.token !== 'string' || s.token === '' || typeof s.scope !== 'object' || s.scope === null) return undefined;
    return s as Session;
  } catch {
    return undefined;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(s));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

/** Whether the session may see application `bkBizId/appName`. */
export function canSee(s: Session, bkBizId: number, appName: string): boolean {
  return s.scope.kind === 'admin' || (s.scope.bkBizId === bkBizId && s.scope.appName === appName);
}
