// Progress of a long store operation (import, export, scrub), reported after every chunk. The
// engine only reports; the CLI draws the bar and the agent may forward it to the console.
export interface Progress {
  readonly phase: 'converting' | 'hashing' | 'copying' | 'scrubbing';
  readonly doneBytes: number;
  readonly totalBytes: number;
}

export type ProgressListener = (progress: Progress) => void;
