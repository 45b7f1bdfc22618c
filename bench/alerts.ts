// Alert latency (issue 8 "Measure"): from a journal event to its notification arriving at a
// webhook receiver, with grouping set to send at once (group wait 0), against Prometheus
// Alertmanager (Debian's prometheus-alertmanager, group_wait 0s) from an alert posted to its API to
// the same kind of webhook receiver, in the same run. The event is a spec apply (`spec.applied`),
// matched by a notice rule; samples are spaced so that each one is a fresh group flush.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freePort, TestCluster, waitFor } from '../test/harness/cluster.js';
import { stats } from './restore.js';

export interface AlertsBenchOptions {
  samples: number;
}

type Summary = { median: number; p90: number; min: number; max: number };

export type AlertsBench =
  | { skipped: string }
  | {
      samples: number;
      continuumMs: Summary;
      alertmanagerMs: Summary;
      /** Our median over Alertmanager's (lower is better). */
      medianRatio: number;
    };

/** A webhook receiver that notes when each request body arrived. */
async function receiver(): Promise<{
  url: string;
  arrivals: { at: number; body: string }[];
  server: Server;
}> {
  const arrivals: { at: number; body: string }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      arrivals.push({ at: Date.now(), body: Buffer.concat(chunks).toString('utf8') });
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook`, arrivals, server };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (s: Summary): Summary => ({
  median: Math.round(s.median),
  p90: Math.round(s.p90),
  min: Math.round(s.min),
  max: Math.round(s.max),
});

async function measureContinuum(samples: number): Promise<number[]> {
  const hook = await receiver();
  const cluster = new TestCluster();
  try {
    await cluster.startController();
    const applied = await cluster.api('POST', '/v1/apply', {
      alerting: {
        channels: [{ name: 'hook', type: 'webhook', url: hook.url }],
        rules: [{ name: 'applied', on: ['spec.applied'], severity: 'info' }],
        routing: { groupBy: ['rule'], groupWaitMs: 0, groupIntervalMs: 100 },
      },
    });
    if (applied.status !== 200) throw new Error(`apply: ${JSON.stringify(applied.body)}`);
    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      await pause(300); // Past the group interval: each sample is a first flush.
      const from = hook.arrivals.length;
      const appliedAt = Date.now();
      const result = await cluster.api('POST', '/v1/apply', { sites: [{ name: `bench-${i}` }] });
      if (result.status !== 200) throw new Error(`apply: ${JSON.stringify(result.body)}`);
      // The notice of this apply: the spec.applied event was journaled after appliedAt.
      const firedAt = (body: string) =>
        (JSON.parse(body) as { alerts: { firedAt: number }[] }).alerts[0]?.firedAt ?? 0;
      const arrival = await waitFor(`notification ${i}`, 10_000, () =>
        hook.arrivals.slice(from).find((a) => firedAt(a.body) >= appliedAt),
      );
      latencies.push(arrival.at - firedAt(arrival.body));
    }
    return latencies;
  } finally {
    await cluster.close();
    hook.server.close();
  }
}

async function measureAlertmanager(samples: number, dir: string): Promise<number[]> {
  const hook = await receiver();
  const port = await freePort();
  const config = join(dir, 'alertmanager.yml');
  writeFileSync(
    config,
    [
      'route:',
      '  receiver: hook',
      "  group_by: ['alertname']",
      '  group_wait: 0s',
      '  group_interval: 1s',
      '  repeat_interval: 1h',
      'receivers:',
      '  - name: hook',
      '    webhook_configs:',
      `      - url: ${hook.url}`,
      '        send_resolved: false',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    'prometheus-alertmanager',
    [
      `--config.file=${config}`,
      `--storage.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    { stdio: 'ignore' },
  );
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor('alertmanager ready', 20_000, async () => {
      try {
        return (await fetch(`${base}/-/ready`)).ok ? true : undefined;
      } catch {
        return undefined;
      }
    });
    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      await pause(300);
      const from = hook.arrivals.length;
      const name = `bench-${i}`;
      const sentAt = Date.now();
      const response = await fetch(`${base}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([
          { labels: { alertname: name }, startsAt: new Date(sentAt).toISOString() },
        ]),
      });
      if (!response.ok) throw new Error(`alertmanager: HTTP ${response.status}`);
      const arrival = await waitFor(`alertmanager notification ${i}`, 10_000, () =>
        hook.arrivals.slice(from).find((a) => a.body.includes(name)),
      );
      latencies.push(arrival.at - sentAt);
    }
    return latencies;
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    hook.server.close();
  }
}

export async function benchAlerts(options: AlertsBenchOptions): Promise<AlertsBench> {
  if (spawnSync('sh', ['-c', 'command -v prometheus-alertmanager']).status !== 0)
    return { skipped: 'prometheus-alertmanager is not installed (apt-get install it)' };
  const dir = join('/tmp', `continuum-bench-alerts-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const continuum = await measureContinuum(options.samples);
  const alertmanager = await measureAlertmanager(options.samples, dir).finally(() =>
    rmSync(dir, { recursive: true, force: true }),
  );
  const ours = round(stats(continuum));
  const theirs = round(stats(alertmanager));
  return {
    samples: options.samples,
    continuumMs: ours,
    alertmanagerMs: theirs,
    medianRatio: Math.round((ours.median / Math.max(1, theirs.median)) * 100) / 100,
  };
}

export function formatAlertsBench(result: AlertsBench): string {
  if ('skipped' in result) return `alerts: skipped (${result.skipped})\n`;
  const line = (s: Summary) => `median ${s.median} ms, p90 ${s.p90}, min ${s.min}, max ${s.max}`;
  return [
    `alerts: event to webhook delivery, ${result.samples} samples, group wait 0`,
    `  continuum:    ${line(result.continuumMs)}`,
    `  alertmanager: ${line(result.alertmanagerMs)}`,
    `  median ratio ${result.medianRatio}`,
    '',
  ].join('\n');
}
