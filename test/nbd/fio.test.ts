// fio's nbd engine against the server: random writes at queue depth 16 on two connections (two
// jobs), every block checksummed (crc32c) and read back, over a unix socket and over TCP.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { missingTools, run, startTestServer, tempDir, type TestServer } from './harness.js';

interface FioJob {
  jobname: string;
  error: number;
  write: { io_bytes: number };
  read: { io_bytes: number };
}

describe('fio with the nbd engine', () => {
  const dir = tempDir('nbd-fio-');
  let t: TestServer;
  before(async () => {
    t = await startTestServer(dir.path);
  });
  after(async () => {
    await t.close();
    dir.remove();
  });

  for (const transport of ['unix', 'tcp'] as const) {
    it(
      `writes and verifies with crc32c (${transport})`,
      { skip: missingTools('fio') },
      async () => {
        const output = join(dir.path, `fio-${transport}.json`);
        const result = await run(
          'fio',
          [
            '--name=verify',
            '--ioengine=nbd',
            `--uri=${t.uri('raw', transport)}`,
            '--rw=randwrite',
            '--bs=4k',
            '--iodepth=16',
            '--numjobs=2',
            '--size=8m',
            '--offset_increment=16m',
            '--verify=crc32c',
            '--do_verify=1',
            '--verify_fatal=1',
            '--verify_state_save=0',
            '--output-format=json',
            `--output=${output}`,
          ],
          120_000,
        );
        assert.equal(result.code, 0, `fio failed:\n${result.stdout}\n${result.stderr}`);
        const jobs = (JSON.parse(readFileSync(output, 'utf8')) as { jobs: FioJob[] }).jobs;
        assert.equal(jobs.length, 2);
        for (const job of jobs) {
          assert.equal(job.error, 0);
          assert.equal(job.write.io_bytes, 8 << 20);
          assert.equal(
            job.read.io_bytes,
            8 << 20,
            'every written block was read back and verified',
          );
        }
      },
    );
  }
});
