// The hosts helper on real network namespaces: hosts reach each other through the switch; a
// partition and a one-sided drop block traffic both ways until healed; a host whose link is down
// is cut off; SIGSTOP freezes a spawned server and SIGCONT resumes it; a crash kills every
// process of the host and takes its link down; cleanup leaves no namespace, link or process of
// the run behind, also after a createHosts that failed half-way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../harness/cluster.js';
import { createHosts, type Host, type Hosts, hostsMissingReason } from './hosts.js';
import { askName, startNameServer } from './tcp.js';

const skip = hostsMissingReason();
const port = 7070;

function namespaces(): string[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name !== '');
}

/** The names of the root namespace's links. */
function rootLinks(): string[] {
  const out = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((line) => line.split(': ')[1]?.split('@')[0])
    .filter((name): name is string => name !== undefined)
    .sort();
}

function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Who answers on each host's name server, asked from `from`, as "from>to=answer" lines. */
async function answers(from: Host, to: readonly Host[]): Promise<string[]> {
  return Promise.all(
    to.map(async (target) => `${from.name}>${target.name}=${await askName(from, target.ip, port)}`),
  );
}

describe('hosts as network namespaces', { skip }, () => {
  let hosts: Hosts;
  let h0: Host, h1: Host, h2: Host, client: Host;

  before(async () => {
    hosts = await createHosts({ count: 3, name: 'hoststest' });
    client = await hosts.addClient();
    [h0, h1, h2] = hosts.hosts as [Host, Host, Host];
    await Promise.all(hosts.hosts.map((host) => startNameServer(host, port)));
  });
  after(() => hosts?.cleanup());

  it('gives each host its own namespace and address, and they reach each other', async () => {
    assert.deepEqual(
      hosts.all.map((host) => [host.name, host.ip]),
      [
        ['h0', '10.77.0.10'],
        ['h1', '10.77.0.11'],
        ['h2', '10.77.0.12'],
        ['client', '10.77.0.13'],
      ],
    );
    const reached = (
      await Promise.all([h0, h1, h2, client].map((from) => answers(from, [h0, h1, h2])))
    ).flat();
    const expected = [h0, h1, h2, client].flatMap((from) =>
      ['h0', 'h1', 'h2'].map((to) => `${from.name}>${to}=${to}`),
    );
    assert.deepEqual(reached, expected);
  });

  it('partition blocks traffic both ways between the groups, heal restores it', async () => {
    await hosts.partition([h0], [h1, h2]);
    assert.deepEqual(await answers(h0, [h1, h2]), ['h0>h1=undefined', 'h0>h2=undefined']);
    assert.deepEqual(await answers(h1, [h0, h2]), ['h1>h0=undefined', 'h1>h2=h2']);
    assert.deepEqual(await answers(client, [h0, h1]), ['client>h0=h0', 'client>h1=h1']);
    await hosts.heal();
    assert.deepEqual(await answers(h0, [h1, h2]), ['h0>h1=h1', 'h0>h2=h2']);
    assert.deepEqual(await answers(h2, [h0]), ['h2>h0=h0']);
  });

  it('dropFrom on one host drops its input and its output', async () => {
    await h0.dropFrom([h1]);
    assert.deepEqual(await answers(h1, [h0]), ['h1>h0=undefined'], 'input from h1 dropped');
    assert.deepEqual(await answers(h0, [h1, h2]), ['h0>h1=undefined', 'h0>h2=h2'], 'output');
    await h0.allowAll();
    assert.deepEqual(await answers(h1, [h0]), ['h1>h0=h0']);
  });

  it('linkDown cuts a host off until linkUp', async () => {
    await h2.linkDown();
    assert.deepEqual(await answers(client, [h2]), ['client>h2=undefined']);
    assert.equal(await askName(h2, h0.ip, port), undefined, 'h2 has no route out');
    await h2.linkUp();
    await waitFor('h2 to answer after linkUp', 10_000, async () => {
      return (await askName(client, h2.ip, port)) === 'h2';
    });
  });

  it('SIGSTOP freezes a spawned server, SIGCONT resumes it', async () => {
    const [pid] = h1.kill('SIGSTOP');
    assert.ok(pid !== undefined && h1.spawnedPids.includes(pid), 'the server was signalled');
    // The signal takes effect when the process next enters the kernel: a moment on a busy CPU.
    await waitFor('the server to be stopped', 5_000, () => processState(pid) === 'T');
    assert.equal(await askName(client, h1.ip, port), undefined, 'a stopped server does not answer');
    h1.kill('SIGCONT');
    assert.equal(await askName(client, h1.ip, port), 'h1');
    assert.notEqual(processState(pid), 'T');
  });
});

describe('a host crash', { skip }, () => {
  it('kills every process in the namespace, forked ones too, and takes the link down', async () => {
    const hosts = await createHosts({ count: 2, name: 'crashtest' });
    try {
      const [h0, h1] = hosts.hosts as [Host, Host];
      await startNameServer(h0, port);
      // A shell that forks a child the helper does not track, like a daemon's worker.
      const shell = h0.spawn(['sh', '-c', 'sleep 600 & echo $!; wait']);
      const forked = await new Promise<number>((resolve) =>
        shell.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
      );
      assert.equal(await askName(h1, h0.ip, port), 'h0');
      const killed = await h0.crash();
      assert.ok(killed.includes(forked), 'the untracked child was killed');
      // Dead: gone, or a zombie until init reaps it (its parent was killed too).
      await waitFor('the forked child to end', 5_000, () =>
        ['Z', undefined].includes(processState(forked)),
      );
      assert.equal(await askName(h1, h0.ip, port), undefined, 'the crashed host is gone');
      const link = await h0.exec(['ip', '-o', 'link', 'show', 'eth0']);
      assert.match(link, /state DOWN/);
    } finally {
      await hosts.cleanup();
    }
  });
});

describe('hosts cleanup', { skip }, () => {
  it('removes every namespace, link and process of the run, and can run twice', async () => {
    const linksBefore = rootLinks();
    const hosts = await createHosts({ count: 2, name: 'cleantest', subnet: '10.78.5.0/24' });
    await hosts.addClient();
    const sleeper = hosts.hosts[0]!.spawn(['sleep', '600']);
    const pid = sleeper.pid!;
    hosts.hosts[0]!.kill('SIGSTOP');
    const ours = namespaces().filter((name) => name.startsWith(`${hosts.tag}-`));
    assert.deepEqual(
      ours.sort(),
      ['client', 'h0', 'h1', 'sw'].map((n) => `${hosts.tag}-${n}`),
    );
    assert.deepEqual(rootLinks(), linksBefore, 'nothing is created in the root namespace');
    assert.equal(hosts.hosts[1]!.ip, '10.78.5.11');

    await hosts.cleanup();
    await hosts.cleanup();
    assert.deepEqual(
      namespaces().filter((name) => name.startsWith(`${hosts.tag}-`)),
      [],
      'namespaces removed',
    );
    assert.deepEqual(rootLinks(), linksBefore);
    assert.equal(sleeper.signalCode, 'SIGKILL', 'the stopped process was killed');
    assert.equal(processState(pid), undefined);
  });

  it('a createHosts that fails half-way removes what it made', async () => {
    // The second run of this prefix in this process would use this name for its host h1.
    const prefix = 'clashtest';
    const first = await createHosts({ count: 1, name: prefix });
    await first.cleanup();
    const taken = `${prefix}-${process.pid}-2-h1`;
    assert.equal(spawnSync('ip', ['netns', 'add', taken]).status, 0);
    try {
      await assert.rejects(createHosts({ count: 3, name: prefix }), /File exists|failed/);
      assert.deepEqual(
        namespaces().filter((name) => name.startsWith(`${prefix}-${process.pid}-`)),
        [taken],
        'only the namespace made outside the run is left',
      );
    } finally {
      spawnSync('ip', ['netns', 'del', taken]);
    }
  });

  it('rejects bad options before creating anything', async () => {
    // This process's namespaces only: test files may run in parallel.
    const ours = () => namespaces().filter((name) => name.includes(`-${process.pid}-`));
    const before = ours();
    await assert.rejects(createHosts({ count: 0 }), RangeError);
    await assert.rejects(createHosts({ count: 1, name: 'Bad-Name' }), RangeError);
    await assert.rejects(createHosts({ count: 1, subnet: '10.0.0.0/30' }), /subnet/);
    await assert.rejects(createHosts({ count: 250, subnet: '10.0.0.0/24' }), RangeError);
    assert.deepEqual(ours(), before);
  });
});
