// `continuum volume import|export|scrub|images|delete-image`: work on one node's files, run on that
// node. The job goes to the node's running agent (or, with none, straight to its store) and its
// progress is drawn on stderr. The node is named by --node (its directory under the Continuum
// home, where `continuum agent` keeps it) or by --data-dir.
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { submitVolumeJob, type VolumeJob } from '../agent/volume-jobs.js';
import { VolumeServer } from '../agent/volume-server.js';
import { parseListenAddress, replicationListenDefault } from '../agent/volume-replication.js';
import { streamLogger } from '../platform/logger.js';
import { loopPollWindowUsDefault, parseLoopPollWindowUs } from '../platform/loop-poll.js';
import type { ImageInfo, ImportResult, ScrubReport } from '../storage/engine/index.js';
import type { ExportResult } from '../storage/engine/index.js';
import { outputOption, print } from './client-options.js';
import { formatBytes, table } from './format.js';
import { continuumHome } from './paths.js';
import { progressBar } from './progress.js';

interface LocalOptions {
  node?: string;
  dataDir?: string;
  output: 'table' | 'json';
}

function withLocalOptions(command: Command): Command {
  return command
    .option('--node <node>', 'the node whose agent data directory is under the Continuum home')
    .option('--data-dir <dir>', "the node agent's data directory (instead of --node)")
    .option(...outputOption);
}

function dataDirOf(opts: LocalOptions): string {
  if ((opts.node === undefined) === (opts.dataDir === undefined))
    throw new Error('expected exactly one of --node <node> or --data-dir <dir>');
  return opts.dataDir !== undefined
    ? resolve(opts.dataDir)
    : join(continuumHome(), 'nodes', opts.node!);
}

async function runJob(label: string, opts: LocalOptions, job: VolumeJob): Promise<unknown> {
  const bar = progressBar(label);
  try {
    return (await submitVolumeJob(dataDirOf(opts), job, (p) => bar.update(p))).result;
  } finally {
    bar.done();
  }
}

const imageFormat = (allowed: string[]) => (value: string) => {
  if (!allowed.includes(value))
    throw new Error(`--format: expected ${allowed.join(' or ')}, got "${value}"`);
  return value;
};

export function addLocalVolumeCommands(volume: Command): void {
  volume
    .command('serve')
    .description(
      "run a node's volume server: its store served over NBD on <data-dir>/run/nbd.sock, jobs on " +
        'volume-jobs.sock (the agent starts it by itself and it outlives agent restarts)',
    )
    .requiredOption('--node <node>', 'the node it serves')
    .option(
      '--data-dir <dir>',
      "the node agent's data directory (default: under the Continuum home)",
    )
    .option(
      '--replication-listen <host:port>',
      "where other nodes' primaries reach this node's replicas (port 0: any free port)",
      parseListenAddress,
      replicationListenDefault,
    )
    .option(
      '--loop-poll-us <us>',
      'keep the event loop turning this long after replies and replication frames leave, so ' +
        'the answer finds it awake (0: never)',
      (value: string) => parseLoopPollWindowUs(value, '--loop-poll-us'),
      loopPollWindowUsDefault,
    )
    .option(
      '--ignore-interrupt',
      "keep running on SIGINT and SIGHUP (how the agent starts it: Ctrl-C at the agent's terminal leaves mounts up)",
    )
    .action(
      async (opts: {
        node: string;
        dataDir?: string;
        replicationListen: { host: string; port: number };
        loopPollUs: number;
        ignoreInterrupt?: boolean;
      }) => {
        const dataDir = resolve(opts.dataDir ?? join(continuumHome(), 'nodes', opts.node));
        const logger = streamLogger({ name: `volume-server ${opts.node}` });
        const server = await VolumeServer.start({
          node: opts.node,
          dataDir,
          logger,
          replicationListen: opts.replicationListen,
          loopPollWindowUs: opts.loopPollUs,
        });
        const pidFile = join(dataDir, 'run', 'volume-server.pid');
        writeFileSync(pidFile, `${process.pid}\n`);
        let closing = false;
        const stop = (signal: string) => {
          if (closing) return;
          closing = true;
          logger.log('info', 'volume server stopping', { signal });
          void server.close().then(() => {
            rmSync(pidFile, { force: true });
            process.exit(0);
          });
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        for (const signal of ['SIGINT', 'SIGHUP'] as const) {
          process.on(signal, () =>
            opts.ignoreInterrupt === true
              ? logger.log('info', 'ignoring the signal: stop the volume server with SIGTERM', {
                  signal,
                })
              : stop(signal),
          );
        }
      },
    );

  withLocalOptions(volume.command('import <file> <name>'))
    .description(
      'import a raw or qcow2 file as a golden image (--image) or as a new volume (default)',
    )
    .option('--image', 'make it a golden image: frozen, shared by clones, deduplicated by content')
    .option(
      '--format <format>',
      'auto, raw or qcow2',
      imageFormat(['auto', 'raw', 'qcow2']),
      'auto',
    )
    .action(
      async (
        file: string,
        name: string,
        opts: LocalOptions & { image?: boolean; format: 'auto' | 'raw' | 'qcow2' },
      ) => {
        const job: VolumeJob = {
          op: 'import',
          as: opts.image === true ? 'image' : 'volume',
          name,
          file: resolve(file),
          format: opts.format,
        };
        const result = (await runJob(`import ${name}`, opts, job)) as ImportResult;
        print(opts.output, result, () =>
          result.deduplicated
            ? `image ${name}: same content as an image already stored; nothing was copied`
            : `${job.as} ${name}: ${formatBytes(result.sizeBytes)} imported` +
              (result.sha256 === undefined ? '' : ` (sha256 ${result.sha256})`),
        );
      },
    );

  withLocalOptions(volume.command('export <source> <file>'))
    .description(
      'write a volume, a snapshot (vol@snap) or an image (image:name) to a raw or qcow2 file; ' +
        'export a snapshot for a point-in-time copy of a volume in use',
    )
    .option('--format <format>', 'raw or qcow2', imageFormat(['raw', 'qcow2']), 'raw')
    .action(
      async (source: string, file: string, opts: LocalOptions & { format: 'raw' | 'qcow2' }) => {
        const job: VolumeJob = { op: 'export', source, file: resolve(file), format: opts.format };
        const result = (await runJob(`export ${source}`, opts, job)) as ExportResult;
        print(
          opts.output,
          result,
          () =>
            `${source}: ${formatBytes(result.sizeBytes)} written to ${file} ` +
            `(${formatBytes(result.dataBytes)} of data, the rest sparse)`,
        );
      },
    );

  withLocalOptions(volume.command('scrub <source>'))
    .description(
      'read every stored block of a volume, snapshot or image and check it against its checksum; ' +
        'exits 1 when damage is left',
    )
    .option(
      '--repair-from <file>',
      'a good raw copy (an export or backup) to repair damaged blocks from',
    )
    .action(async (source: string, opts: LocalOptions & { repairFrom?: string }) => {
      const job: VolumeJob = {
        op: 'scrub',
        source,
        ...(opts.repairFrom === undefined ? {} : { repairFrom: resolve(opts.repairFrom) }),
      };
      const report = (await runJob(`scrub ${source}`, opts, job)) as ScrubReport;
      print(opts.output, report, () => scrubText(report));
      if (report.damaged.length > report.repairedCount) process.exitCode = 1;
    });

  withLocalOptions(volume.command('images'))
    .description('the golden images of a node, with the volumes cloned from each')
    .action(async (opts: LocalOptions) => {
      const result = (await runJob('images', opts, { op: 'images' })) as { images: ImageInfo[] };
      print(opts.output, result, () =>
        table(
          ['NAME', 'SIZE', 'STORED', 'SHA256', 'CLONES'],
          result.images.map((i) => [
            i.name,
            formatBytes(i.sizeBytes),
            formatBytes(i.layer.storedBytes),
            i.sha256.slice(0, 16),
            i.dependents.join(',') || '-',
          ]),
        ),
      );
    });

  withLocalOptions(volume.command('delete-image <name>'))
    .description('delete a golden image (refused while volumes are cloned from it)')
    .action(async (name: string, opts: LocalOptions) => {
      const result = await runJob('delete-image', opts, { op: 'delete-image', name });
      print(opts.output, result, () => `image ${name} deleted`);
    });
}

function scrubText(report: ScrubReport): string {
  const lines = [
    `${report.source}: ${report.blocksChecked} blocks checked, ${report.damaged.length} damaged, ` +
      `${report.repairedCount} repaired`,
  ];
  for (const finding of report.damaged) {
    lines.push(
      `  layer ${finding.layer} block ${finding.block} (offset ${finding.offsetBytes}): ` +
        `${finding.detail}${finding.repaired ? ' - repaired' : finding.visible ? '' : ' (hidden by a layer above)'}`,
    );
  }
  return lines.join('\n');
}
