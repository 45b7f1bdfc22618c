// Subscribes a view to the console's live data; re-renders on each change.
import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { ConsoleData, Snapshot } from './data.js';

export const DataContext = createContext<ConsoleData | null>(null);

export function useData(): { data: ConsoleData; snap: Snapshot } {
  const data = useContext(DataContext);
  if (data === null) throw new Error('useData outside of a signed-in console');
  const [snap, setSnap] = useState(data.snapshot());
  useEffect(() => {
    setSnap(data.snapshot());
    return data.subscribe(() => setSnap(data.snapshot()));
  }, [data]);
  return { data, snap };
}
