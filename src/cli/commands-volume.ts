// `continuum volume ...`: the volumes of every node through the API (list, create, grow,
// snapshot, clone, delete). Sizes are given with a unit (512M, 10G) and shown the same way.
import type { Command } from 'commander';
import type { VolumeInfo, VolumeResult } from '../core/volumes.js';
import { clientOf, print, withClientOptions } from './client-options.js';
import { addLocalVolumeCommands } from './commands-volume-local.js';
import { formatBytes, table } from './format.js';

const units: Record<string, number> = { M: 1, G: 1024, T: 1024 * 1024 };

/** "512M", "10G", "1T" (or a bare number of MiB) as MiB; anything else is refused with the format. */
export function parseSizeMiB(text: string): number {
  const match = /^(\d+)([MGT])?i?B?$/i.exec(text.trim());
  if (match === null)
    throw new Error(
      `size: expected a whole number with an optional unit M, G or T (like 512M or 10G), got "${text}"`,
    );
  return Number(match[1]) * units[(match[2] ?? 'M').toUpperCase()]!;
}

const volumeRows = (volumes: VolumeInfo[]) =>
  table(
    ['NODE', 'NAME', 'SIZE', 'ALLOCATED', 'SNAPSHOTS', 'ORIGIN', 'ATTACHED'],
    volumes.map((v) => [
      v.node,
      v.name,
      formatBytes(v.sizeBytes),
      formatBytes(v.allocatedBytes),
      v.snapshots.join(',') || '-',
      v.origin ?? '-',
      v.attached ? 'yes' : 'no',
    ]),
  );

/** "node/name", the way a volume is named across the cluster. */
function splitRef(ref: string): { node: string; name: string } {
  const [node, name, ...rest] = ref.split('/');
  if (!node || !name || rest.length > 0)
    throw new Error(`volume: expected <node>/<name> (like n1/data), got "${ref}"`);
  return { node, name };
}

const path = (ref: { node: string; name: string }, tail = '') =>
  `/v1/volumes/${encodeURIComponent(ref.node)}/${encodeURIComponent(ref.name)}${tail}`;

export function addVolumeCommands(program: Command): void {
  const volume = program.command('volume').description('block volumes on the nodes');
  withClientOptions(volume.command('list'))
    .description('every volume of every connected node')
    .option('--node <node>', 'only this node')
    .action(async (opts: { node?: string }, cmd: Command) => {
      const { client, output } = clientOf(cmd);
      const query = opts.node === undefined ? '' : `?node=${encodeURIComponent(opts.node)}`;
      const result = await client.request<{
        items: VolumeInfo[];
        unreachable: { node: string; error: string }[];
      }>('GET', `/v1/volumes${query}`);
      print(output, result, () =>
        [
          volumeRows(result.items),
          ...result.unreachable.map((u) => `unreachable: ${u.node}: ${u.error}`),
        ].join('\n'),
      );
    });
  const mutate = (
    command: Command,
    describe: string,
    send: (
      ref: { node: string; name: string },
      arg: string | undefined,
      cmd: Command,
    ) => [string, string, string?],
  ) =>
    withClientOptions(command)
      .description(describe)
      .action(async (ref: string, arg: string | undefined, _o: unknown, cmd: Command) => {
        const { client, output } = clientOf(cmd);
        const [method, url, body] = send(splitRef(ref), arg, cmd);
        const result = await client.request<VolumeResult>(method, url, body);
        print(output, result, () => volumeRows(result.volumes));
      });
  mutate(
    volume
      .command('create <node/name> [size]')
      .option('--image <image>', "start from a golden image of the node (size: the image's)"),
    'create a volume: empty (sparse: takes no space until written), or a thin clone of an image',
    (ref, size, cmd) => {
      const image = cmd.opts<{ image?: string }>().image;
      if (size === undefined && image === undefined)
        throw new Error('create: expected a size (like 10G), or --image to start from an image');
      return [
        'POST',
        '/v1/volumes',
        JSON.stringify({
          node: ref.node,
          name: ref.name,
          ...(size === undefined ? {} : { sizeMiB: parseSizeMiB(size) }),
          ...(image === undefined ? {} : { image }),
        }),
      ];
    },
  );
  mutate(
    volume.command('grow <node/name> <size>'),
    'grow a volume to a new size (volumes never shrink)',
    (ref, size) => ['POST', path(ref, '/grow'), JSON.stringify({ sizeMiB: parseSizeMiB(size!) })],
  );
  mutate(
    volume.command('snapshot <node/name> <snapshot>'),
    'freeze the volume as it is now under a name',
    (ref, snapshot) => ['POST', path(ref, '/snapshots'), JSON.stringify({ snapshot })],
  );
  mutate(
    volume
      .command('clone <node/name> <snapshot>')
      .requiredOption('--name <name>', 'name of the new volume'),
    'a new volume that starts as the snapshot and diverges from it (the snapshot is shared, not copied)',
    (ref, snapshot, cmd) => [
      'POST',
      path(ref, '/clone'),
      JSON.stringify({ snapshot, name: cmd.opts<{ name: string }>().name }),
    ],
  );
  mutate(
    volume.command('delete <node/name> [snapshot]'),
    'delete a volume, or one of its snapshots',
    (ref, snapshot) =>
      snapshot === undefined
        ? ['DELETE', path(ref)]
        : ['DELETE', path(ref, `/snapshots/${encodeURIComponent(snapshot)}`)],
  );
  addLocalVolumeCommands(volume);
}
