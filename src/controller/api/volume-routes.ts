// /v1/volumes: the volumes of every node, and operations on one (create, grow, snapshot, clone,
// delete). Each operation is forwarded to the agent of the volume's node (volume-rpc.ts) and, when
// it changes something, recorded in the journal with who asked for it.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import { ContinuumError, isContinuumError } from '../../core/errors.js';
import { keys } from '../../core/model.js';
import { nameSchema } from '../../core/spec.js';
import type { VolumeInfo, VolumeRequest, VolumeResult } from '../../core/volumes.js';
import { volumeRequestSchema } from '../../core/volumes.js';
import type { Controller } from '../controller.js';
import { actorOf, badRequest, jsonBody } from './request.js';

const sizeBody = z.strictObject({ sizeMiB: z.number() });
const createBody = z.strictObject({
  node: nameSchema,
  name: nameSchema,
  sizeMiB: z.number().optional(),
  image: nameSchema.optional(),
});
const snapshotBody = z.strictObject({ snapshot: nameSchema });
const cloneBody = z.strictObject({ snapshot: nameSchema, name: nameSchema });

function param(c: Context, name: string): string {
  const parsed = nameSchema.safeParse(c.req.param(name));
  if (!parsed.success) throw badRequest(`path parameter ${name}`, parsed.error);
  return parsed.data;
}

/** The request as the agent will get it, validated here so a bad one never leaves the API. */
function checked(request: unknown): VolumeRequest {
  const parsed = volumeRequestSchema.safeParse(request);
  if (!parsed.success) throw badRequest('body', parsed.error);
  return parsed.data;
}

/** Workloads whose spec mounts this volume: deleting it under them is refused. */
async function usersOf(controller: Controller, node: string, name: string): Promise<string[]> {
  const { entries } = await controller.store.range<{
    name: string;
    spec: { volumes?: { node: string; name: string }[] };
  }>(keys.prefixes.workloads);
  return entries
    .filter((e) => (e.value.spec.volumes ?? []).some((v) => v.node === node && v.name === name))
    .map((e) => e.value.name);
}

async function run(
  c: Context,
  controller: Controller,
  node: string,
  request: VolumeRequest,
): Promise<VolumeResult> {
  const result = await controller.volumes.call(node, request);
  const actor = actorOf(c);
  const name = 'name' in request ? request.name : node;
  await controller.store.appendEvents([
    {
      at: controller.clock.now(),
      kind: `volume.${request.op}`,
      subject: { kind: 'volume', name: `${node}/${name}` },
      message: `volume ${request.op} of ${node}/${name} by ${actor}`,
      data: { node, actor, request },
    },
  ]);
  return result;
}

export function mountVolumeRoutes(app: Hono, controller: Controller): void {
  app.get('/v1/volumes', async (c) => {
    const only = c.req.query('node');
    const nodes = only === undefined ? controller.sessions.connectedNodes().sort() : [only];
    const items: VolumeInfo[] = [];
    const unreachable: { node: string; error: string }[] = [];
    await Promise.all(
      nodes.map(async (node) => {
        try {
          items.push(...(await controller.volumes.call(node, { op: 'list' })).volumes);
        } catch (error) {
          if (only !== undefined || !isContinuumError(error)) throw error;
          // An agent without volumes is not a problem when listing the whole cluster.
          if (
            error.code !== 'CONTINUUM_ERR_UNAVAILABLE' ||
            !/serves no volumes/.test(error.message)
          )
            unreachable.push({ node, error: error.message });
        }
      }),
    );
    items.sort((a, b) =>
      a.node === b.node ? (a.name < b.name ? -1 : 1) : a.node < b.node ? -1 : 1,
    );
    return c.json({ items, unreachable });
  });
  app.post('/v1/volumes', async (c) => {
    const body = await jsonBody(c, createBody);
    const request = checked({
      op: 'create',
      name: body.name,
      ...(body.sizeMiB === undefined ? {} : { sizeMiB: body.sizeMiB }),
      ...(body.image === undefined ? {} : { image: body.image }),
    });
    return c.json(await run(c, controller, body.node, request));
  });
  app.post('/v1/volumes/:node/:name/grow', async (c) => {
    const body = await jsonBody(c, sizeBody);
    const request = checked({ op: 'grow', name: param(c, 'name'), sizeMiB: body.sizeMiB });
    return c.json(await run(c, controller, param(c, 'node'), request));
  });
  app.post('/v1/volumes/:node/:name/snapshots', async (c) => {
    const body = await jsonBody(c, snapshotBody);
    const request = checked({ op: 'snapshot', name: param(c, 'name'), snapshot: body.snapshot });
    return c.json(await run(c, controller, param(c, 'node'), request));
  });
  app.delete('/v1/volumes/:node/:name/snapshots/:snapshot', async (c) => {
    const request = checked({
      op: 'delete-snapshot',
      name: param(c, 'name'),
      snapshot: param(c, 'snapshot'),
    });
    return c.json(await run(c, controller, param(c, 'node'), request));
  });
  app.post('/v1/volumes/:node/:name/clone', async (c) => {
    const body = await jsonBody(c, cloneBody);
    const request = checked({
      op: 'clone',
      source: param(c, 'name'),
      snapshot: body.snapshot,
      name: body.name,
    });
    return c.json(await run(c, controller, param(c, 'node'), request));
  });
  app.delete('/v1/volumes/:node/:name', async (c) => {
    const node = param(c, 'node');
    const name = param(c, 'name');
    const users = await usersOf(controller, node, name);
    if (users.length > 0)
      throw new ContinuumError(
        'CONTINUUM_ERR_CONFLICT',
        `volume ${node}/${name} is mounted by workload ${users.join(', ')}; delete or change that workload first`,
      );
    return c.json(await run(c, controller, node, { op: 'delete', name }));
  });
}
