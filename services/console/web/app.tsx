/** The shell: sign-in, the top bar, and the page of the current route. */
import { useEffect, useState } from 'preact/hooks';
import { setCallSession, type ApiError } from './api.ts';
import type { Settings } from './settings.ts';
import { AppSettingsPage } from './pages/app-settings.tsx';
import { AppsPage } from './pages/apps.tsx';
import { FlowsPage } from './pages/flows.tsx';
import { HostPage } from './pages/host.tsx';
import { HostsPage } from './pages/hosts.tsx';
import { MapPage } from './pages/map.tsx';
import { SignIn } from './pages/signin.tsx';
import { TracePage } from './pages/trace.tsx';
import { TracesPage } from './pages/traces.tsx';
import { href, navigate, useRoute, type Route } from './router.ts';
import { canSee, clearSession, loadSession, saveSession, type Session } from './session.ts';

function home(s: Session): string {
  return s.scope.kind === 'admin' ? href(['apps']) : href(['apps', s.scope.bkBizId, s.scope.appName, 'map']);
}

function NotFound({ what }: { what: string }) {
  return (
    <div class="page">
      <h1>Not here</h1>
      <p>{what}</p>
    </div>
  );
}

function Page({ route, session, settings }: { route: Route; session: Session; settings: Settings }) {
  const [first, second, third, fourth, fifth] = route.parts;
  const admin = session.scope.kind === 'admin';
  if (first === 'apps' && second !== undefined && third !== undefined) {
    const biz = Number(second);
    if (!Number.isInteger(biz)) return <NotFound what={`${second} is not a business id`} />;
    if (!canSee(session, biz, third)) return <NotFound what={`this token is for application ${session.scope.kind === 'app' ? `${session.scope.bkBizId}/${session.scope.appName}` : ''} only`} />;
    if (fourth === 'map' || fourth === undefined) return <MapPage bkBizId={biz} appName={third} query={route.query} />;
    if (fourth === 'traces' && fifth !== undefined) return <TracePage bkBizId={biz} appName={third} traceId={fifth} />;
    if (fourth === 'traces') return <TracesPage bkBizId={biz} appName={third} query={route.query} />;
    if (fourth === 'settings') return admin ? <AppSettingsPage bkBizId={biz} appName={third} /> : <NotFound what="an application's settings need the admin token" />;
    return <NotFound what={`no page ${fourth}`} />;
  }
  if (!admin) return <NotFound what="this page needs the admin token" />;
  if (first === 'apps' || first === undefined) return <AppsPage settings={settings} />;
  if (first === 'hosts' && second !== undefined && third !== undefined) return <HostPage cloudId={Number(second)} ip={third} query={route.query} />;
  if (first === 'hosts') return <HostsPage />;
  if (first === 'flows') return <FlowsPage />;
  return <NotFound what={`no page ${first}`} />;
}

export function App({ settings }: { settings: Settings }) {
  const route = useRoute();
  const [session, setSession] = useState<Session | undefined>(() => loadSession());
  const [refused, setRefused] = useState<string | undefined>(undefined);
  setCallSession(session, (err: ApiError) => setRefused(err.message));

  useEffect(() => {
    if (!session && route.parts[0] !== 'signin') navigate(href(['signin']));
    if (session && (route.parts.length === 0 || route.parts[0] === 'signin')) navigate(home(session));
  }, [session, route]);

  if (!session || route.parts[0] === 'signin') {
    return (
      <SignIn
        onSignedIn={(s) => {
          saveSession(s);
          setRefused(undefined);
          setSession(s);
          navigate(home(s));
        }}
      />
    );
  }
  const signOut = (): void => {
    clearSession();
    setSession(undefined);
    navigate(href(['signin']));
  };
  const here = route.parts[0] ?? '';
  const appRoute = here === 'apps' && route.parts[1] !== undefined && route.parts[2] !== undefined;
  const admin = session.scope.kind === 'admin';
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href={home(session)}>bkstream</a>
        <nav class="main-nav" aria-label="pages">
          {admin ? (
            <>
              <a href={href(['apps'])} class={here === 'apps' && !appRoute ? 'active' : ''}>Applications</a>
              <a href={href(['hosts'])} class={here === 'hosts' ? 'active' : ''}>Hosts</a>
              <a href={href(['flows'])} class={here === 'flows' ? 'active' : ''}>Flows</a>
            </>
          ) : null}
          {appRoute ? (
            <span class="app-nav">
              <span class="app-name">{route.parts[1]}/{route.parts[2]}</span>
              <a href={href(['apps', route.parts[1] as string, route.parts[2] as string, 'map'])} class={route.parts[3] === 'map' || route.parts[3] === undefined ? 'active' : ''}>Service map</a>
              <a href={href(['apps', route.parts[1] as string, route.parts[2] as string, 'traces'])} class={route.parts[3] === 'traces' ? 'active' : ''}>Traces</a>
              {admin ? <a href={href(['apps', route.parts[1] as string, route.parts[2] as string, 'settings'])} class={route.parts[3] === 'settings' ? 'active' : ''}>Settings</a> : null}
            </span>
          ) : null}
        </nav>
        <span class="who" title="the token this tab signed in with">{admin ? 'admin' : `app ${session.scope.kind === 'app' ? `${session.scope.bkBizId}/${session.scope.appName}` : ''}`}</span>
        <button type="button" class="link" onClick={signOut}>Sign out</button>
      </header>
      {refused ? (
        <div class="banner error" role="alert">
          The token was refused: {refused}. <button type="button" class="link" onClick={signOut}>Sign in again</button>
        </div>
      ) : null}
      <main>
        <Page route={route} session={session} settings={settings} />
      </main>
    </div>
  );
}
