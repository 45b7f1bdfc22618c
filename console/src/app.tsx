// The console's shell: sign-in gate, header with navigation and the live-link status, and the view
// of the current route. Nothing of the cluster is fetched or shown before the token is accepted.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, storedToken, storeToken, whenUnauthorized } from './api.js';
import { ConsoleData } from './data.js';
import { durationMs, clock } from './format.js';
import { useRoute, go, type Route } from './router.js';
import { SignIn } from './sign-in.js';
import { DataContext, useData } from './use-data.js';
import { ApplyView } from './views/apply.js';
import { EventsView } from './views/events.js';
import { NodeView } from './views/node.js';
import { Overview } from './views/overview.js';
import { VolumesView } from './views/volumes.js';
import { WorkloadView } from './views/workload.js';

export function App() {
  const [token, setToken] = useState(storedToken());
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const signOut = (why?: string) => {
    storeToken(null);
    setNotice(why);
    setToken(null);
  };
  useEffect(
    () => whenUnauthorized(() => signOut('The controller no longer accepts this token.')),
    [],
  );
  if (token === null)
    return (
      <SignIn
        notice={notice}
        onSignedIn={(t) => {
          storeToken(t);
          setNotice(undefined);
          setToken(t);
        }}
      />
    );
  return <SignedIn token={token} onSignOut={signOut} />;
}

function SignedIn(props: { token: string; onSignOut: (why?: string) => void }) {
  const data = useMemo(() => new ConsoleData(props.token), [props.token]);
  const [failed, setFailed] = useState<string | undefined>();
  useEffect(() => {
    data.start().catch((err: unknown) => {
      if (err instanceof ApiError && err.code === 'CONTINUUM_ERR_UNAUTHORIZED')
        props.onSignOut('The controller refused this token. Check the API token and try again.');
      else setFailed(err instanceof Error ? err.message : String(err));
    });
    return () => data.stop();
  }, [data]);
  return (
    <DataContext.Provider value={data}>
      <Shell onSignOut={() => props.onSignOut()} failed={failed} />
    </DataContext.Provider>
  );
}

const navigation: { path: string; label: string; key: string; is: (r: Route) => boolean }[] = [
  {
    path: '',
    label: 'Overview',
    key: 'o',
    is: (r) => ['overview', 'node', 'workload'].includes(r.view),
  },
  { path: 'volumes', label: 'Volumes', key: 'v', is: (r) => r.view === 'volumes' },
  { path: 'events', label: 'Events', key: 'e', is: (r) => r.view === 'events' },
  { path: 'apply', label: 'Apply a spec', key: 'a', is: (r) => r.view === 'apply' },
];

function typing(target: EventTarget | null): boolean {
  return target instanceof HTMLElement && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName);
}

function Shell(props: { onSignOut: () => void; failed: string | undefined }) {
  const { snap } = useData();
  const route = useRoute();
  useEffect(() => {
    // One-key shortcuts outside text fields (docs/console.md "Keyboard").
    const onKey = (e: KeyboardEvent) => {
      if (e.altKey || e.ctrlKey || e.metaKey || typing(e.target)) return;
      if (document.querySelector('dialog[open]') !== null) return;
      const item = navigation.find((n) => n.key === e.key);
      if (item !== undefined) go(item.path);
      else if (e.key === '/') {
        const filter = document.querySelector<HTMLInputElement>('input[data-filter]');
        if (filter !== null) {
          e.preventDefault();
          filter.focus();
        }
      }
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, []);
  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById('main')?.focus();
        }}
      >
        Skip to content
      </a>
      <header>
        <strong class="brand">Continuum</strong>
        <nav aria-label="Views">
          {navigation.map((n) => (
            <a
              key={n.path}
              href={`#/${n.path}`}
              aria-current={n.is(route) ? 'page' : undefined}
              aria-keyshortcuts={n.key}
            >
              {n.label}
            </a>
          ))}
        </nav>
        <LinkStatus />
        <span class="cluster">
          {snap.cluster === undefined ? '' : `cluster ${snap.cluster.clusterId.slice(0, 8)}`}
        </span>
        <button type="button" onClick={props.onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {props.failed !== undefined && (
          <p class="error" role="alert">
            Could not load the cluster: {props.failed}
          </p>
        )}
        {snap.error !== undefined && (
          <p class="error" role="alert">
            Last refresh failed: {snap.error}
          </p>
        )}
        {!snap.loaded && props.failed === undefined && <p aria-busy="true">Loading the cluster…</p>}
        {snap.loaded && <Current route={route} />}
      </main>
    </>
  );
}

function Current(props: { route: Route }) {
  const r = props.route;
  if (r.view === 'node') return <NodeView name={r.name} />;
  if (r.view === 'workload') return <WorkloadView name={r.name} />;
  if (r.view === 'volumes') return <VolumesView workload={r.workload} volume={r.volume} />;
  if (r.view === 'events') return <EventsView />;
  if (r.view === 'apply') return <ApplyView />;
  return <Overview />;
}

function LinkStatus() {
  const { snap } = useData();
  const link = snap.link;
  let text: string;
  if (link.state === 'live')
    text =
      link.backAt !== undefined && link.lostAt !== undefined
        ? `Live: connection back at ${clock(link.backAt)} (lost for ${durationMs(link.backAt - link.lostAt)})`
        : 'Live';
  else if (link.state === 'lost')
    text = `Connection to the controller lost at ${clock(link.lostAt)}: reconnecting… (${link.detail})`;
  else text = 'Connecting…';
  return (
    <span
      class={`link link-${link.state}`}
      role="status"
      aria-live="polite"
      data-testid="link-status"
    >
      {text}
    </span>
  );
}
