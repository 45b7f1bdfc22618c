// The live connection to the controller's journal (/v1/events/stream): reconnects with backoff,
// resumes after the last sequence number seen, and tells the app when it is lost and back.
import { authHeaders } from './api.js';
import { SseParser } from './sse.js';
import type { JournalEvent } from './types.js';

export type LinkState = 'connecting' | 'live' | 'lost';

export interface LiveOptions {
  token: string;
  onEvents: (events: JournalEvent[]) => void;
  onState: (state: LinkState, detail: string) => void;
  /** The sequence number to resume after; 0 streams only what happens from now on. */
  afterSeq: number;
}

/** Backoff between reconnection attempts: doubles from the first to the last, plus jitter. */
export const reconnectDelayFirstMs = 500;
export const reconnectDelayMaxMs = 10_000;
/**
 * The controller sends a keep-alive comment every 15 s; a stream silent for longer than this is
 * taken as lost even if TCP has not noticed (a controller host that vanished).
 */
export const streamSilenceMaxMs = 40_000;

export class LiveLink {
  private lastSeq: number;
  private stopped = false;
  private abort: AbortController | undefined;
  private failures = 0;

  constructor(private readonly options: LiveOptions) {
    this.lastSeq = options.afterSeq;
  }

  get seq(): number {
    return this.lastSeq;
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      // A retry keeps the link "lost" with the reason it was lost: reporting each attempt would
      // replace that reason in the header with an internal step ("connecting") while it retries.
      if (this.failures === 0) this.options.onState('connecting', 'connecting');
      try {
        await this.readOnce();
        if (!this.stopped) this.options.onState('lost', 'the controller ended the stream');
      } catch (error) {
        if (this.stopped) return;
        this.options.onState('lost', error instanceof Error ? error.message : String(error));
      }
      this.failures++;
      const delayMs = Math.min(
        reconnectDelayMaxMs,
        reconnectDelayFirstMs * 2 ** (this.failures - 1),
      );
      await new Promise((resolve) => setTimeout(resolve, delayMs * (0.8 + 0.4 * Math.random())));
    }
  }

  private async readOnce(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    let silence = setTimeout(() => abort.abort(), streamSilenceMaxMs);
    try {
      const response = await fetch(`v1/events/stream?after=${this.lastSeq}`, {
        headers: { ...authHeaders(this.options.token), accept: 'text/event-stream' },
        signal: abort.signal,
      });
      if (!response.ok || response.body === null)
        throw new Error(`the event stream answered HTTP ${response.status}`);
      this.failures = 0;
      this.options.onState('live', 'connected');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        clearTimeout(silence);
        silence = setTimeout(() => abort.abort(), streamSilenceMaxMs);
        const events = parser
          .push(value)
          .filter((m) => m.event === 'event')
          .map((m) => JSON.parse(m.data) as JournalEvent)
          .filter((e) => e.seq > this.lastSeq);
        if (events.length === 0) continue;
        this.lastSeq = events[events.length - 1]!.seq;
        this.options.onEvents(events);
      }
    } finally {
      clearTimeout(silence);
    }
  }
}
