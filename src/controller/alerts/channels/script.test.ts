// The script channel with real processes: the notification arrives as JSON on standard input, a
// non-zero exit fails the delivery with its stderr, and a script that hangs is killed with its
// whole process group when the timeout is over.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { alertChannelSchema } from '../../../core/alerting-spec.js';
import { DeliveryError } from './channel.js';
import { scriptChannel } from './script.js';
import { sampleNotification } from './test-support.js';

type ScriptSpec = Extract<ReturnType<typeof alertChannelSchema.parse>, { type: 'script' }>;
const spec = (command: string[], timeoutMs = 5000) =>
  alertChannelSchema.parse({ name: 'run', type: 'script', command, timeoutMs }) as ScriptSpec;

function send(s: ScriptSpec) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), s.timeoutMs);
  return scriptChannel(s)
    .send(sampleNotification(), { now: Date.now(), signal: abort.signal })
    .finally(() => clearTimeout(timer));
}

describe('script channel', () => {
  const dir = mkdtempSync(join(tmpdir(), 'continuum-script-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('passes the notification as JSON on standard input', async () => {
    const out = join(dir, 'stdin.json');
    await send(spec(['sh', '-c', `cat > "${out}"`]));
    const written = JSON.parse(readFileSync(out, 'utf8')) as {
      id: string;
      alerts: { subject: { name: string } }[];
    };
    assert.equal(written.id, 'n-1');
    assert.equal(written.alerts[0]!.subject.name, 'web');
  });

  it('fails on a non-zero exit code, with what the script said', async () => {
    await assert.rejects(
      send(spec(['sh', '-c', 'cat >/dev/null; echo "mailbox full" >&2; exit 3'])),
      (err: unknown) => {
        assert.ok(err instanceof DeliveryError);
        assert.match(err.message, /exit code 3: mailbox full/);
        return true;
      },
    );
  });

  it('kills the whole process group when the timeout is over', async () => {
    const marker = join(dir, 'child-survived');
    // The child sleeps, then would leave a marker: it must die with its parent's group.
    const script = `(sleep 1; touch "${marker}") & sleep 30`;
    await assert.rejects(send(spec(['sh', '-c', script], 300)), /timed out after 300 ms/);
    // An absence can only be checked once the moment it would have happened (1 s) is past.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(existsSync(marker), false, 'the background child was killed too');
  });
});
