/**
 * Sign-in with a token: the admin token (every page), or an application's token, which shows that
 * application only. The token is tried once against an API it must be able to read before it is kept.
 */
import { useState } from 'preact/hooks';
import { appPath, call, setCallSession } from '../api.ts';
import type { Session } from '../session.ts';

export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState('');
  const [kind, setKind] = useState<'admin' | 'app'>('admin');
  const [biz, setBiz] = useState('');
  const [app, setApp] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    setError(undefined);
    const t = token.trim();
    if (t === '') return setError('Paste a token.');
    let session: Session;
    if (kind === 'admin') {
      session = { token: t, scope: { kind: 'admin' } };
    } else {
      const b = Number(biz);
      if (!Number.isInteger(b) || app.trim() === '') return setError('An application token needs its business id and application name.');
      session = { token: t, scope: { kind: 'app', bkBizId: b, appName: app.trim() } };
    }
    setBusy(true);
    try {
      setCallSession(session, () => undefined);
      if (session.scope.kind === 'admin') await call('collector', '/apps');
      else await call('discovery', `${appPath(session.scope.bkBizId, session.scope.appName)}/nodes`, { query: { page_size: 1 } });
      onSignedIn(session);
    } catch (err) {
      setCallSession(undefined, () => undefined);
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="signin">
      <form class="card" onSubmit={(e) => void submit(e)} aria-label="sign in">
        <h1>bkstream console</h1>
        <p class="muted">Sign in with the admin token, or with an application's token to see that application only. The token stays in this tab (session storage) and is sent with every API call.</p>
        <label>
          Token
          <input type="password" name="token" autocomplete="off" value={token} onInput={(e) => setToken((e.target as HTMLInputElement).value)} autofocus />
        </label>
        <fieldset>
          <legend>The token is</legend>
          <label class="inline">
            <input type="radio" name="kind" value="admin" checked={kind === 'admin'} onChange={() => setKind('admin')} /> the admin token
          </label>
          <label class="inline">
            <input type="radio" name="kind" value="app" checked={kind === 'app'} onChange={() => setKind('app')} /> an application's token
          </label>
        </fieldset>
        {kind === 'app' ? (
          <div class="row">
            <label>
              Business id
              <input name="bk_biz_id" inputMode="numeric" value={biz} onInput={(e) => setBiz((e.target as HTMLInputElement).value)} />
            </label>
            <label>
              Application
              <input name="app_name" value={app} onInput={(e) => setApp((e.target as HTMLInputElement).value)} />
            </label>
          </div>
        ) : null}
        {error ? <p class="error" role="alert">{error}</p> : null}
        <button type="submit" disabled={busy}>{busy ? 'Checking…' : 'Sign in'}</button>
      </form>
    </div>
  );
}
