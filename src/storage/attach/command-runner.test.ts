// The real command runner on real short-lived processes: exit status and stderr captured, output
// bounded, a timeout that settles even for a process that ignores it, and a missing tool.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { realCommandRunner, runChecked } from './command-runner.js';
import { hasCode } from './test-support.js';

const options = { timeoutMs: 5000, outputBytesMax: 1024 };

test('exit status, stdout and stderr come back', async () => {
  const outcome = await realCommandRunner.run(
    '/bin/sh',
    ['-c', 'echo out; echo err >&2; exit 3'],
    options,
  );
  assert.deepEqual(outcome, { exitCode: 3, signal: null, stdout: 'out\n', stderr: 'err\n' });
});

test('output past the limit is counted, not kept', async () => {
  const outcome = await realCommandRunner.run(
    '/bin/sh',
    ['-c', 'head -c 5000 /dev/zero | tr "\\0" x'],
    {
      ...options,
      outputBytesMax: 100,
    },
  );
  assert.equal(outcome.stdout, `${'x'.repeat(100)}... (4900 more bytes)`);
});

test('a command past its timeout is killed and reported, with what it said', async () => {
  const started = Date.now();
  await assert.rejects(
    realCommandRunner.run('/bin/sh', ['-c', 'echo stuck >&2; trap "" TERM; exec sleep 30'], {
      ...options,
      timeoutMs: 300,
    }),
    (error) =>
      hasCode('CONTINUUM_ERR_ATTACH_TIMEOUT')(error) &&
      /sh -c .* 300 ms: stuck/.test(String(error)),
  );
  // Well under the 30 s the command asked for: the runner did not wait for it.
  assert.ok(Date.now() - started < 10_000);
});

test('a tool that does not exist is reported as missing', async () => {
  await assert.rejects(
    realCommandRunner.run('/nonexistent/losetup', [], options),
    hasCode('CONTINUUM_ERR_ATTACH_TOOL_MISSING'),
  );
});

test('runChecked turns a failure into an error carrying the step, command and stderr', async () => {
  await assert.rejects(
    runChecked(
      realCommandRunner,
      'bind loop device',
      { file: '/bin/sh', args: ['-c', 'echo nope >&2; exit 1'] },
      options,
    ),
    (error) => {
      hasCode('CONTINUUM_ERR_ATTACH_COMMAND_FAILED')(error);
      assert.equal(
        (error as Error).message,
        'bind loop device: sh -c echo nope >&2; exit 1 exited 1: nope',
      );
      return true;
    },
  );
  assert.equal(
    await runChecked(realCommandRunner, 'echo', { file: '/bin/echo', args: ['hi'] }, options),
    'hi\n',
  );
});
