// The in-process change feed of a local backend. Every committed batch is offered to every
// watcher; each watcher gets it filtered to its prefix (journal events always pass), as its own
// deep copy, in a microtask. Microtasks run first in, first out, so a watcher sees batches in
// revision order and a replay queued at subscribe time comes before anything committed later.
import type { Change, WatchBatch, WatchHandle } from './port.js';

interface Watcher {
  prefix: string;
  listener: (batch: WatchBatch) => void;
  active: boolean;
}

export class WatchHub {
  private readonly watchers = new Set<Watcher>();

  /** Delivers `replay` (older batches, in revision order) first, then every later publish. */
  subscribe(
    prefix: string,
    replay: Iterable<WatchBatch>,
    listener: (batch: WatchBatch) => void,
  ): WatchHandle {
    const watcher: Watcher = { prefix, listener, active: true };
    this.watchers.add(watcher);
    for (const batch of replay) this.offer(watcher, batch);
    return {
      cancel: () => {
        watcher.active = false;
        this.watchers.delete(watcher);
      },
    };
  }

  publish(batch: WatchBatch): void {
    for (const watcher of this.watchers) this.offer(watcher, batch);
  }

  /** Stops every watch, including deliveries already queued. */
  close(): void {
    for (const watcher of this.watchers) watcher.active = false;
    this.watchers.clear();
  }

  private offer(watcher: Watcher, batch: WatchBatch): void {
    const changes = batch.changes.filter((change) => changeKey(change).startsWith(watcher.prefix));
    if (changes.length === 0 && batch.events.length === 0) return;
    // Changes and events are deeply frozen at commit (txn-plan.ts): safe to share with listeners.
    const delivered = { revision: batch.revision, changes, events: batch.events };
    queueMicrotask(() => {
      if (watcher.active) watcher.listener(delivered);
    });
  }
}

function changeKey(change: Change): string {
  return change.type === 'put' ? change.entry.key : change.key;
}
