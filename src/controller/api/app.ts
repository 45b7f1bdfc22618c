// The HTTP API (/v1) as a Hono app: parse, call the controller, map the result (CONVENTIONS.md
// item 6). Tests call it in-process with app.request(); server.ts mounts it on node:http.
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { ContinuumError, isContinuumError } from '../../core/errors.js';
import type { JournalEvent } from '../../core/model.js';
import { parseSpecText } from '../../core/spec-validate.js';
import { logLinesMax } from '../../core/protocol.js';
import { eventsPageMax } from '../../store/port.js';
import {
  applySpec,
  deleteWorkload,
  restartWorkload,
  setMaintenance,
  switchover,
} from '../actions.js';
import type { Controller } from '../controller.js';
import { listFailovers, listInstances, listNodes, listWorkloads } from '../queries.js';
import { notLeaderError } from '../leader-guard.js';
import { tokenMatches } from './auth.js';
import { actorOf, badRequest, jsonBody } from './request.js';
import { mountConsole } from './console-static.js';
import { mountAlertRoutes } from './alert-routes.js';
import { mountVolumeRoutes } from './volume-routes.js';
import type { ControllerMetrics } from '../metrics/controller-metrics.js';
import { mountMetricsRoutes } from './metrics-routes.js';

export interface ApiOptions {
  apiToken: string;
  /** Keep-alive comment period on push channels. */
  keepAliveMs?: number;
  /**
   * Keep-alive period of the route stream: redirectors drop a silent stream after three of these
   * (route-client.ts streamIdleTimeoutMs), so they leave a controller host that vanished in
   * seconds, as agents do.
   */
  routesKeepAliveMs?: number;
  /** Serves GET /metrics and /v1/metrics/history (metrics-routes.ts) when given. */
  metrics?: ControllerMetrics;
}

/** One comment a second per redirector: cheap, and a vanished controller is noticed in 3 s. */
export const routesKeepAliveMsDefault = 1000;

const switchoverBody = z.strictObject({ to: z.string().min(1).optional() }).default({});
const maintenanceBody = z.strictObject({
  on: z.boolean({ error: 'expected "on": true or false' }),
});
const logsQuery = z.strictObject({
  lines: z.coerce
    .number({ error: `expected lines as a whole number from 1 to ${logLinesMax}` })
    .int({ error: `expected lines as a whole number from 1 to ${logLinesMax}` })
    .min(1, { error: `expected lines as a whole number from 1 to ${logLinesMax}` })
    .max(logLinesMax, { error: `expected lines as a whole number from 1 to ${logLinesMax}` })
    .default(100),
  node: z.string().min(1).optional(),
});
const eventsQuery = z.strictObject({
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().positive().max(eventsPageMax).optional(),
  kind: z.string().optional(),
  subject: z.string().optional(),
  since: z.coerce.number().int().nonnegative().optional(),
});

export function createApi(controller: Controller, options: ApiOptions): Hono {
  const app = new Hono();
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const routesKeepAliveMs = options.routesKeepAliveMs ?? routesKeepAliveMsDefault;
  app.onError((err, c) => {
    const error = isContinuumError(err)
      ? err
      : new ContinuumError('CONTINUUM_ERR_INTERNAL', 'internal error');
    if (!isContinuumError(err))
      controller.logger.log('error', 'api error', { error: String(err), path: c.req.path });
    return c.json({ error: error.toJSON() }, error.status as 400);
  });
  app.notFound((c) =>
    c.json(
      {
        error: new ContinuumError(
          'CONTINUUM_ERR_NOT_FOUND',
          `no such route: ${c.req.method} ${c.req.path}`,
        ).toJSON(),
      },
      404,
    ),
  );
  app.get('/healthz', (c) =>
    c.json({
      ok: true,
      controllerId: controller.controllerId,
      role: controller.isLeader ? 'leader' : 'follower',
      ...(controller.leaderUrl() === undefined ? {} : { leader: controller.leaderUrl() }),
    }),
  );
  app.use('/v1/*', async (c, next) => {
    if (!tokenMatches(c.req.header('authorization'), options.apiToken)) {
      throw new ContinuumError(
        'CONTINUUM_ERR_UNAUTHORIZED',
        'expected header "Authorization: Bearer <api token>"',
      );
    }
    await next();
  });
  // A follower serves what it reads from the store; what needs the leader (writes, routes, volumes
  // on agents, which only the leader has sessions with) is refused naming the leader, and clients
  // with a list of controllers move on to the next.
  app.use('/v1/*', async (c, next) => {
    if (controller.isLeader) return next();
    if (!followerServes(c.req.method, c.req.path)) throw notLeaderError(controller.leaderUrl());
    c.header('x-continuum-role', 'follower');
    await next();
  });
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: controller.config.requestBodyBytesMax,
      onError: () => {
        throw new ContinuumError(
          'CONTINUUM_ERR_BODY_TOO_LARGE',
          `expected a body of at most ${controller.config.requestBodyBytesMax} bytes`,
        );
      },
    }),
  );
  app.get('/v1/cluster', (c) =>
    c.json({
      clusterId: controller.clusterId,
      controllerId: controller.controllerId,
      startedAt: controller.startedAt,
      role: controller.isLeader ? 'leader' : 'follower',
      ...(controller.leaderUrl() === undefined ? {} : { leader: controller.leaderUrl() }),
    }),
  );
  app.get('/v1/nodes', async (c) => c.json({ items: await listNodes(controller) }));
  app.get('/v1/nodes/:name', async (c) => {
    const node = (await listNodes(controller)).find((n) => n.name === c.req.param('name'));
    if (node === undefined)
      throw new ContinuumError(
        'CONTINUUM_ERR_NODE_NOT_FOUND',
        `no node named "${c.req.param('name')}"`,
      );
    return c.json(node);
  });
  app.get('/v1/workloads', async (c) => c.json({ items: await listWorkloads(controller) }));
  app.get('/v1/workloads/:name', async (c) => {
    const workload = (await listWorkloads(controller)).find((w) => w.name === c.req.param('name'));
    if (workload === undefined)
      throw new ContinuumError(
        'CONTINUUM_ERR_WORKLOAD_NOT_FOUND',
        `no workload named "${c.req.param('name')}"`,
      );
    return c.json(workload);
  });
  // The recent output of the workload's instance, read by the agent of its node (the owner's, or
  // the one named: a failed-over instance's output stays on its old node).
  app.get('/v1/workloads/:name/logs', async (c) => {
    const query = logsQuery.safeParse(c.req.query());
    if (!query.success) throw badRequest('query', query.error);
    const name = c.req.param('name');
    const workload = (await listWorkloads(controller)).find((w) => w.name === name);
    if (workload === undefined)
      throw new ContinuumError('CONTINUUM_ERR_WORKLOAD_NOT_FOUND', `no workload named "${name}"`);
    const node = query.data.node ?? workload.node;
    if (node === null)
      throw new ContinuumError(
        'CONTINUUM_ERR_UNAVAILABLE',
        `workload "${name}" runs nowhere yet; name a node with ?node=`,
      );
    const result = await controller.logs.call(node, { workload: name, linesMax: query.data.lines });
    return c.json({ workload: name, node, ...result });
  });
  app.delete('/v1/workloads/:name', async (c) => {
    await deleteWorkload(controller, c.req.param('name'), actorOf(c));
    return c.json({ deleted: c.req.param('name') });
  });
  app.get('/v1/instances', async (c) => c.json({ items: await listInstances(controller) }));
  app.get('/v1/failovers', async (c) => c.json({ items: await listFailovers(controller, 1000) }));
  app.get('/v1/routes', (c) => c.json(controller.routes()));
  app.post('/v1/apply', async (c) => {
    const text = await c.req.text();
    const parsed = parseSpecText(text);
    if (!parsed.ok) {
      throw new ContinuumError(
        'CONTINUUM_ERR_SPEC_INVALID',
        'the spec could not be parsed; nothing was applied',
        { details: { problems: parsed.problems } },
      );
    }
    return c.json(await applySpec(controller, parsed.value, actorOf(c)));
  });
  app.post('/v1/workloads/:name/switchover', async (c) => {
    const body = await jsonBody(c, switchoverBody);
    return c.json(
      await switchover(controller, c.req.param('name'), {
        ...(body.to === undefined ? {} : { to: body.to }),
        actor: actorOf(c),
      }),
    );
  });
  app.post('/v1/workloads/:name/restart', async (c) => {
    await jsonBody(c, z.strictObject({}).default({}));
    return c.json(await restartWorkload(controller, c.req.param('name'), actorOf(c)));
  });
  app.post('/v1/nodes/:name/maintenance', async (c) => {
    const body = await jsonBody(c, maintenanceBody);
    await setMaintenance(controller, c.req.param('name'), body.on, actorOf(c));
    return c.json({ node: c.req.param('name'), maintenance: body.on });
  });
  mountVolumeRoutes(app, controller);
  mountAlertRoutes(app, controller);
  mountConsole(app);
  if (options.metrics !== undefined)
    mountMetricsRoutes(app, options.metrics, { apiToken: options.apiToken });
  app.get('/v1/events', async (c) => {
    const query = parseEventsQuery(c);
    return c.json({ items: await controller.store.readEvents(query) });
  });
  app.get('/v1/events/stream', (c) => {
    const query = parseEventsQuery(c);
    return streamSSE(c, async (stream) => {
      const pending: JournalEvent[] = [];
      let wake: (() => void) | undefined;
      const watch = controller.store.watch('events/', {}, (batch) => {
        pending.push(...batch.events);
        wake?.();
      });
      stream.onAbort(() => {
        watch.cancel();
        wake?.();
      });
      let lastSeq = query.afterSeq ?? 0;
      const backlog =
        query.afterSeq === undefined
          ? []
          : await controller.store.readEvents({ ...query, limit: eventsPageMax });
      for (const event of [...backlog]) {
        await stream.writeSSE({
          event: 'event',
          id: String(event.seq),
          data: JSON.stringify(event),
        });
        lastSeq = event.seq;
      }
      while (!stream.aborted) {
        const batch = pending.splice(0).filter((e) => e.seq > lastSeq && matches(e, query));
        for (const event of batch) {
          await stream.writeSSE({
            event: 'event',
            id: String(event.seq),
            data: JSON.stringify(event),
          });
          lastSeq = event.seq;
        }
        if (pending.length === 0) await waitFor(keepAliveMs, (resolve) => (wake = resolve));
        if (pending.length === 0 && !stream.aborted) await stream.write(': keep-alive\n\n');
      }
    });
  });
  app.get('/v1/routes/stream', (c) =>
    streamSSE(c, async (stream) => {
      let wake: (() => void) | undefined;
      let dirty = true;
      const unsubscribe = controller.onRoutes(() => {
        dirty = true;
        wake?.();
      });
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      // A controller that stops leading ends the stream: the redirector follows the new leader.
      while (!stream.aborted && controller.isLeader) {
        if (dirty) {
          dirty = false;
          await stream.writeSSE({ event: 'routes', data: JSON.stringify(controller.routes()) });
        }
        await waitFor(routesKeepAliveMs, (resolve) => (wake = resolve));
        if (!dirty && !stream.aborted && controller.isLeader)
          await stream.write(': keep-alive\n\n');
      }
      unsubscribe();
    }),
  );
  return app;
}

function waitFor(timeoutMs: number, register: (resolve: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    register(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

type EventFilter = {
  afterSeq?: number;
  limit?: number;
  kinds?: string[];
  subject?: { name: string };
  sinceAt?: number;
};

function parseEventsQuery(c: Context): EventFilter {
  const parsed = eventsQuery.safeParse(c.req.query());
  if (!parsed.success) throw badRequest('query', parsed.error);
  const q = parsed.data;
  return {
    ...(q.after === undefined ? {} : { afterSeq: q.after }),
    ...(q.limit === undefined ? {} : { limit: q.limit }),
    ...(q.kind === undefined ? {} : { kinds: q.kind.split(',') }),
    ...(q.subject === undefined ? {} : { subject: { name: q.subject } }),
    ...(q.since === undefined ? {} : { sinceAt: q.since }),
  };
}

function matches(event: JournalEvent, filter: EventFilter): boolean {
  if (
    filter.kinds !== undefined &&
    !filter.kinds.some((k) => event.kind === k || event.kind.startsWith(`${k}.`))
  )
    return false;
  if (filter.subject !== undefined && event.subject.name !== filter.subject.name) return false;
  return true;
}

/** Reads a follower answers from the store alone. */
function followerServes(method: string, path: string): boolean {
  if (method !== 'GET') return false;
  // Instance output is read by agents, which hold sessions with the leader only.
  return (
    !path.startsWith('/v1/routes') && !path.startsWith('/v1/volumes') && !path.endsWith('/logs')
  );
}
