// Hash routing: every view has an address (#/workload/kv) that survives a reload and can be shared.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { view: 'overview' }
  | { view: 'node'; name: string }
  | { view: 'workload'; name: string }
  | { view: 'volumes'; workload?: string; volume?: string }
  | { view: 'events' }
  | { view: 'apply' };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [view, a, b] = parts;
  if (view === 'node' && a) return { view: 'node', name: a };
  if (view === 'workload' && a) return { view: 'workload', name: a };
  if (view === 'volumes')
    return { view: 'volumes', ...(a ? { workload: a } : {}), ...(b ? { volume: b } : {}) };
  if (view === 'events') return { view: 'events' };
  if (view === 'apply') return { view: 'apply' };
  return { view: 'overview' };
}

export function go(path: string): void {
  location.hash = `#/${path}`;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
