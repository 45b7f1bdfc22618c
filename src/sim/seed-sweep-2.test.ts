// Half 2 of the seed sweep of npm test (seed-sweep.ts).
import { describeSweepHalf } from './seed-sweep.js';

describeSweepHalf(2);
