// Commands that talk to the controller's API: apply, get, describe, events, switchover, restart,
// maintenance. Tables for people, -o json for scripts.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { JournalEvent } from '../core/model.js';
import type { FailoverView, NodeView, WorkloadView } from '../controller/queries.js';
import { clientOf, print, withClientOptions } from './client-options.js';
import { clockTime, duration, table } from './format.js';

const nodeRows = (nodes: NodeView[]) =>
  table(
    ['NAME', 'SITE', 'ROLE', 'STATE', 'CPU', 'MEMORY', 'HEARTBEAT', 'INSTANCES'],
    nodes.map((n) => [
      n.name,
      n.site,
      n.role,
      n.state,
      n.usage ? `${n.usage.cpuPercent}%` : '-',
      `${n.capacity.memoryMiB}Mi`,
      n.lastHeartbeatAgoMs === undefined ? '-' : `${duration(n.lastHeartbeatAgoMs)} ago`,
      n.instances.join(',') || '-',
    ]),
  );

const workloadRows = (items: WorkloadView[]) =>
  table(
    ['NAME', 'PHASE', 'NODE', 'EPOCH', 'INSTANCE', 'PID', 'RESTARTS', 'PRIORITY', 'COPIES'],
    items.map((w) => [
      w.name,
      w.phase,
      w.node ?? '-',
      w.epoch,
      w.instance?.state,
      w.instance?.pid,
      w.instance?.restarts,
      w.spec.availability.priority,
      copiesSummary(w),
    ]),
  );

/** In-sync copies of the least protected replicated volume, and resyncs in progress. */
function copiesSummary(w: WorkloadView): string {
  const volumes = Object.entries(w.volumes ?? {});
  if (volumes.length === 0) return '-';
  const wanted = (name: string) => w.spec.volumes.find((v) => v.name === name)?.replicas ?? 0;
  const least = Math.min(...volumes.map(([name, r]) => r.isr.length - wanted(name)));
  const [name, record] = volumes.find(([n, r]) => r.isr.length - wanted(n) === least)!;
  const resyncing = (w.resyncs ?? []).map((r) => `${r.node} ${percent(r)}`);
  const base = `${record.isr.length}/${wanted(name)} in sync`;
  return resyncing.length === 0 ? base : `${base}, resync ${resyncing.join(', ')}`;
}

function percent(r: { bytesCopied: number; bytesToCopy: number }): string {
  return r.bytesToCopy === 0 ? '0%' : `${Math.floor((100 * r.bytesCopied) / r.bytesToCopy)}%`;
}

/** Each replicated volume: where its copies are, which are in sync, and why the others are not. */
function volumeLines(w: WorkloadView): string[] {
  const volumes = Object.entries(w.volumes ?? {});
  if (volumes.length === 0) return [];
  return [
    '',
    'Volumes:',
    ...volumes.flatMap(([name, r]) => [
      `  ${name}: copies ${r.replicas.join(', ')}; in sync ${r.isr.join(', ') || 'none'}`,
      ...Object.entries(r.outdated).map(
        ([node, o]) => `    ${node} outdated since ${new Date(o.since).toISOString()}: ${o.reason}`,
      ),
      ...(w.resyncs ?? [])
        .filter((s) => s.volume === name)
        .map(
          (s) =>
            `    ${s.node} resyncing from ${s.primary} (${s.mode}): ${percent(s)}, ` +
            `${s.bytesCopied} of ${s.bytesToCopy} bytes, ${s.blocksCompared} blocks compared`,
        ),
    ]),
  ];
}

const failoverRows = (items: FailoverView[]) =>
  table(
    [
      'TIME',
      'WORKLOAD',
      'KIND',
      'FROM',
      'TO',
      'EPOCH',
      'DETECT',
      'DECIDE',
      'START',
      'HEALTHY',
      'RESTORE',
    ],
    items.map((f) => [
      clockTime(f.at),
      f.workload,
      f.kind,
      f.fromNode ?? '-',
      f.toNode ?? '-',
      f.epoch,
      duration(f.detectMs),
      duration(f.decideMs),
      duration(f.startMs),
      duration(f.healthyMs),
      duration(f.restoreMs),
    ]),
  );

const eventLine = (e: JournalEvent) =>
  `${clockTime(e.at)}  ${e.kind.padEnd(22)} ${e.subject.name.padEnd(16)} ${e.message}`;

export function addClientCommands(program: Command): void {
  withClientOptions(program.command('apply'))
    .description('validate a spec file (YAML or JSON) and apply it whole')
    .requiredOption('-f, --file <path>', 'spec file, or - for standard input')
    .action(async (opts: { file: string }, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const text = readFileSync(opts.file === '-' ? 0 : opts.file, 'utf8');
      const result = await client.request<{
        created: string[];
        updated: string[];
        unchanged: string[];
      }>('POST', '/v1/apply', text, 'application/yaml');
      print(output, result, () =>
        [
          ...result.created.map((n) => `${n} created`),
          ...result.updated.map((n) => `${n} updated`),
          ...result.unchanged.map((n) => `${n} unchanged`),
        ].join('\n'),
      );
    });
  const get = program
    .command('get')
    .description('list nodes, workloads, instances, failovers or events');
  withClientOptions(get.command('nodes')).action(async (_o, cmd: Command) => {
    const { client, output } = clientOf(cmd);
    const { items } = await client.request<{ items: NodeView[] }>('GET', '/v1/nodes');
    print(output, items, () => nodeRows(items));
  });
  withClientOptions(get.command('workloads')).action(async (_o, cmd: Command) => {
    const { client, output } = clientOf(cmd);
    const { items } = await client.request<{ items: WorkloadView[] }>('GET', '/v1/workloads');
    print(output, items, () => workloadRows(items));
  });
  withClientOptions(get.command('instances')).action(async (_o, cmd: Command) => {
    const { client, output } = clientOf(cmd);
    const { items } = await client.request<{ items: WorkloadView['instance'][] }>(
      'GET',
      '/v1/instances',
    );
    print(output, items, () =>
      table(
        ['WORKLOAD', 'NODE', 'EPOCH', 'STATE', 'PID', 'PORTS', 'RESTARTS', 'MESSAGE'],
        items.map((i) => [
          i!.workload,
          i!.node,
          i!.epoch,
          i!.state,
          i!.pid,
          Object.entries(i!.ports)
            .map(([k, v]) => `${k}:${v}`)
            .join(','),
          i!.restarts,
          i!.message,
        ]),
      ),
    );
  });
  withClientOptions(get.command('failovers'))
    .description('completed changes of owner with the time of each step')
    .action(async (_o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const { items } = await client.request<{ items: FailoverView[] }>('GET', '/v1/failovers');
      print(output, items, () => failoverRows(items));
    });
  const describe = program.command('describe').description('show one node or workload in full');
  withClientOptions(describe.command('node <name>')).action(
    async (name: string, _o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const node = await client.request<NodeView>('GET', `/v1/nodes/${encodeURIComponent(name)}`);
      print(output, node, () => JSON.stringify(node, null, 2));
    },
  );
  withClientOptions(describe.command('workload <name>')).action(
    async (name: string, _o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const workload = await client.request<WorkloadView>(
        'GET',
        `/v1/workloads/${encodeURIComponent(name)}`,
      );
      const events = await client.request<{ items: JournalEvent[] }>(
        'GET',
        `/v1/events?subject=${encodeURIComponent(name)}&limit=10000`,
      );
      const failovers = (
        await client.request<{ items: FailoverView[] }>('GET', '/v1/failovers')
      ).items.filter((f) => f.workload === name);
      print(output, { ...workload, failovers }, () =>
        [
          `Name:      ${workload.name}`,
          `Phase:     ${workload.phase}`,
          `Node:      ${workload.node ?? '-'}    Epoch: ${workload.epoch}`,
          `Instance:  ${workload.instance ? `${workload.instance.state} pid ${workload.instance.pid ?? '-'} restarts ${workload.instance.restarts}` : '-'}`,
          `Endpoints: ${workload.spec.endpoints.map((e) => `${e.name} ${e.host}:${e.port}`).join(', ') || '-'}`,
          ...(workload.blockedReason ? [`Blocked:   ${workload.blockedReason}`] : []),
          ...volumeLines(workload),
          '',
          'Failovers:',
          failovers.length === 0 ? '  none' : failoverRows(failovers),
          '',
          'Recent events:',
          ...events.items.slice(-15).map(eventLine),
        ].join('\n'),
      );
    },
  );
  withClientOptions(program.command('events'))
    .description('the journal; --follow keeps printing new events')
    .option('--follow', 'keep printing new events as they happen')
    .option('--kind <kinds>', 'only these kinds (comma-separated, prefixes allowed when following)')
    .option('--limit <n>', 'how many recent events', '50')
    .action(async (opts: { follow?: boolean; kind?: string; limit: string }, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit <= 0)
        throw new Error(`--limit: expected a positive whole number, got "${opts.limit}"`);
      const kind = opts.kind === undefined ? '' : `&kind=${encodeURIComponent(opts.kind)}`;
      const { items } = await client.request<{ items: JournalEvent[] }>(
        'GET',
        `/v1/events?limit=10000${kind}`,
      );
      const recent = items.slice(-limit);
      for (const e of recent)
        process.stdout.write(`${output === 'json' ? JSON.stringify(e) : eventLine(e)}\n`);
      if (!opts.follow) return;
      const after = recent.at(-1)?.seq ?? 0;
      await client.stream(`/v1/events/stream?after=${after}${kind}`, (data) => {
        const e = JSON.parse(data) as JournalEvent;
        process.stdout.write(`${output === 'json' ? data : eventLine(e)}\n`);
      });
    });
  withClientOptions(program.command('switchover <workload>'))
    .description('move a workload to another node with zero loss (the old instance stops first)')
    .option('--to <node>', 'target node (default: chosen by the scheduler)')
    .action(async (workload: string, opts: { to?: string }, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const result = await client.request<{ epoch: number; node: string }>(
        'POST',
        `/v1/workloads/${encodeURIComponent(workload)}/switchover`,
        JSON.stringify(opts.to === undefined ? {} : { to: opts.to }),
      );
      print(
        output,
        result,
        () => `${workload} switching over to ${result.node} at epoch ${result.epoch}`,
      );
    });
  withClientOptions(program.command('restart <workload>'))
    .description('restart a workload in place')
    .action(async (workload: string, _o, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const result = await client.request<{ restartNonce: number }>(
        'POST',
        `/v1/workloads/${encodeURIComponent(workload)}/restart`,
        '{}',
      );
      print(output, result, () => `${workload} restart requested`);
    });
  withClientOptions(program.command('logs <workload>'))
    .description("the last lines of a workload's output, read on its node")
    .option('--lines <n>', 'how many lines (1-1000)', '100')
    .option('--node <name>', "another node's instance (say, the one it failed over from)")
    .action(async (workload: string, options: { lines: string; node?: string }, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const query = new URLSearchParams({ lines: options.lines });
      if (options.node !== undefined) query.set('node', options.node);
      const result = await client.request<{ lines: string[]; truncated: boolean }>(
        'GET',
        `/v1/workloads/${encodeURIComponent(workload)}/logs?${query.toString()}`,
      );
      print(output, result, () => result.lines.join('\n'));
    });
  withClientOptions(program.command('maintenance <on|off> <node>'))
    .description('maintenance on moves every workload off the node; off makes it schedulable again')
    .action(async (mode: string, node: string, _o, cmd: Command) => {
      if (mode !== 'on' && mode !== 'off')
        throw new Error(`maintenance: expected "on" or "off", got "${mode}"`);
      const { client, output } = clientOf(cmd);
      const result = await client.request<unknown>(
        'POST',
        `/v1/nodes/${encodeURIComponent(node)}/maintenance`,
        JSON.stringify({ on: mode === 'on' }),
      );
      print(output, result, () => `maintenance ${mode} for ${node}`);
    });
}
