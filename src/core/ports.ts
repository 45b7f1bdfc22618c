// Ports for every source of nondeterminism (CONVENTIONS.md item 5). The real implementations live
// at the edge (src/core/real-ports.ts is allowed no I/O beyond timers); the simulator supplies its own.

export type TimerHandle = object;

export interface Clock {
  /** Milliseconds since the Unix epoch, as this host believes it. */
  now(): number;
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** A seeded source of randomness: next() returns a float in [0, 1). */
export interface Rng {
  next(): number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** A Logger that drops everything; for tests and the simulator's quiet mode. */
export const silentLogger: Logger = {
  log() {},
  child() {
    return silentLogger;
  },
};
