// Real Clock and Rng for daemons. Kept out of src/core so pure code never reaches for them.
import type { Clock, Rng } from '../core/ports.js';

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, delayMs) => {
    const timer = setTimeout(callback, delayMs);
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as unknown as NodeJS.Timeout),
};

export const systemRng: Rng = { next: () => Math.random() };
