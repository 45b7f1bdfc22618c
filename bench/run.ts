// `npm run bench`: every benchmark, with its results saved under bench/results/. Options:
// --runs N (default 20) and --hog-seconds S (default 300) for the restore benchmark.
import { parseArgs } from 'node:util';
import { benchRestore, saveResult } from './restore.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    'hog-seconds': { type: 'string', default: '300' },
  },
});
const runs = Number(values.runs);
const hogSeconds = Number(values['hog-seconds']);
if (!Number.isInteger(runs) || runs < 1)
  throw new RangeError(`--runs: expected a positive whole number, got ${values.runs}`);
if (!Number.isFinite(hogSeconds) || hogSeconds < 0)
  throw new RangeError(`--hog-seconds: expected seconds >= 0, got ${values['hog-seconds']}`);

const result = await benchRestore({ runs, hogSeconds });
const { samples: _samples, ...summary } = result;
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.stdout.write(`saved ${saveResult('restore', result)}\n`);
