// /v1/alerts: current and recent alerts with their delivery status, the rules and channels in
// force (never a secret), silences (list, create, delete) and a test notification. Reads come from
// the store, so followers answer them too; writes are the leader's (app.ts middleware).
import { randomUUID } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { AlertChannelSpec } from '../../core/alerting-spec.js';
import { ContinuumError } from '../../core/errors.js';
import { nameSchema } from '../../core/spec.js';
import type { Controller } from '../controller.js';
import { alertConfigOf, emptyAlertState, type Silence } from '../alerts/model.js';
import {
  readAlertingConfig,
  readAlertState,
  readSilences,
  silenceKey,
} from '../alerts/store-keys.js';
import { sendTestNotification } from '../alerts/test-send.js';
import { actorOf, badRequest, jsonBody } from './request.js';

/** The longest silence: a longer one is a rule to change, not a silence. */
export const silenceDurationMsMax = 30 * 86_400_000;
/** Silences kept at once (active and recently expired). */
export const silencesMax = 1000;

const silenceBody = z
  .strictObject({
    rule: nameSchema.optional(),
    /** A subject name ("web", "n1", "web/n2") or kind/name ("node/n1"). */
    subject: z.string().min(1).max(300).optional(),
    durationMs: z
      .number({ error: 'expected a duration in ms' })
      .int({ error: 'expected a whole number of ms' })
      .min(1000, { error: 'expected at least 1000 ms' })
      .max(silenceDurationMsMax, { error: `expected at most ${silenceDurationMsMax} ms` }),
    comment: z
      .string()
      .max(500, { error: 'expected a comment of at most 500 characters' })
      .default(''),
  })
  .refine((b) => b.rule !== undefined || b.subject !== undefined, {
    error: 'expected a rule, a subject, or both (a silence of everything is not one)',
    path: ['rule'],
  });
const testBody = z.strictObject({ channel: nameSchema.optional() }).default({});
const silenceIdSchema = z.string().regex(/^[0-9a-f-]{36}$/, { error: 'expected a silence id' });

/** What an operator may see of a channel: where it goes, never its secrets or header values. */
export function publicChannel(spec: AlertChannelSpec): Record<string, unknown> {
  switch (spec.type) {
    case 'webhook': {
      const url = new URL(spec.url);
      return {
        name: spec.name,
        type: spec.type,
        // The path and query of a webhook URL often hold its token.
        url: `${url.origin}/…`,
        signed: spec.secretFile !== undefined || spec.secretEnv !== undefined,
        headers: Object.keys(spec.headers),
        timeoutMs: spec.timeoutMs,
      };
    }
    case 'smtp':
      return {
        name: spec.name,
        type: spec.type,
        host: spec.host,
        port: spec.port,
        secure: spec.secure,
        starttls: spec.starttls,
        requireTls: spec.requireTls,
        from: spec.from,
        to: spec.to,
        authenticated: spec.username !== undefined,
        timeoutMs: spec.timeoutMs,
      };
    case 'syslog':
      return { ...spec };
    case 'script':
      return {
        name: spec.name,
        type: spec.type,
        command: spec.command[0],
        timeoutMs: spec.timeoutMs,
      };
  }
}

export function mountAlertRoutes(app: Hono, controller: Controller): void {
  const { store, clock } = controller;
  app.get('/v1/alerts', async (c) => {
    const state = (await readAlertState(store))?.state ?? emptyAlertState(clock.now());
    return c.json({
      items: Object.values(state.alerts).sort((a, b) => a.firedSeq - b.firedSeq),
      recent: state.recent,
      pending: Object.values(state.outbox).map((e) => ({
        notification: e.notification.id,
        channel: e.notification.channel,
        status: e.status,
        attempts: e.attempts,
        ...(e.lastError === undefined ? {} : { lastError: e.lastError }),
      })),
      counters: state.counters,
      cursor: state.cursor,
    });
  });
  app.get('/v1/alerts/rules', async (c) => {
    const config = alertConfigOf((await readAlertingConfig(store))?.spec);
    return c.json({ items: config.rules, routing: config.routing });
  });
  app.get('/v1/alerts/channels', async (c) => {
    const stored = await readAlertingConfig(store);
    const config = alertConfigOf(stored?.spec);
    return c.json({ items: config.channels.map(publicChannel), delivery: config.delivery });
  });
  app.get('/v1/alerts/silences', async (c) => {
    const now = clock.now();
    const items = (await readSilences(store)).map((s) => ({ ...s, active: s.until > now }));
    return c.json({ items: items.sort((a, b) => a.createdAt - b.createdAt) });
  });
  app.post('/v1/alerts/silences', async (c) => {
    const body = await jsonBody(c, silenceBody);
    const now = clock.now();
    const existing = await readSilences(store);
    // Expired silences make room: they are kept only for the listing.
    const expired = existing.filter((s) => s.until <= now);
    if (existing.length - expired.length >= silencesMax)
      throw new ContinuumError(
        'CONTINUUM_ERR_ALERT_SILENCE_LIMIT',
        `expected at most ${silencesMax} active silences`,
      );
    const actor = actorOf(c);
    const silence: Silence = {
      id: randomUUID(),
      matchers: {
        ...(body.rule === undefined ? {} : { rule: body.rule }),
        ...(body.subject === undefined ? {} : { subject: body.subject }),
      },
      until: now + body.durationMs,
      createdAt: now,
      createdBy: actor,
      comment: body.comment,
    };
    await store.txn({
      compares: [{ key: silenceKey(silence.id), modRevision: 0 }],
      puts: [{ key: silenceKey(silence.id), value: silence }],
      deletes: existing.length >= silencesMax ? expired.map((s) => silenceKey(s.id)) : [],
      events: [
        {
          at: now,
          kind: 'alert.silenced',
          subject: { kind: 'alert', name: silence.id },
          actor,
          message: `silence ${silence.id} (${describeMatchers(silence)}) until ${new Date(silence.until).toISOString()} by ${actor}${silence.comment === '' ? '' : `: ${silence.comment}`}`,
          data: { silence },
        },
      ],
    });
    return c.json(silence, 201);
  });
  app.delete('/v1/alerts/silences/:id', async (c) => {
    const id = silenceParam(c);
    const entry = await store.get<Silence>(silenceKey(id));
    if (entry === undefined)
      throw new ContinuumError(
        'CONTINUUM_ERR_ALERT_SILENCE_NOT_FOUND',
        `no silence with id "${id}"`,
      );
    const actor = actorOf(c);
    await store.txn({
      compares: [{ key: entry.key, modRevision: entry.modRevision }],
      deletes: [entry.key],
      events: [
        {
          at: clock.now(),
          kind: 'alert.unsilenced',
          subject: { kind: 'alert', name: id },
          actor,
          message: `silence ${id} (${describeMatchers(entry.value)}) removed by ${actor}`,
        },
      ],
    });
    return c.json({ deleted: id });
  });
  app.post('/v1/alerts/test', async (c) => {
    const body = await jsonBody(c, testBody);
    const stored = await readAlertingConfig(store);
    const channels = alertConfigOf(stored?.spec).channels;
    if (body.channel !== undefined && !channels.some((ch) => ch.name === body.channel))
      throw new ContinuumError(
        'CONTINUUM_ERR_ALERT_CHANNEL_NOT_FOUND',
        `no alert channel named "${body.channel}"`,
      );
    const chosen =
      body.channel === undefined ? channels : channels.filter((ch) => ch.name === body.channel);
    const results = await sendTestNotification(chosen, { clock, actor: actorOf(c) });
    await store.appendEvents([
      {
        at: clock.now(),
        kind: 'alert.test',
        subject: { kind: 'alert', name: body.channel ?? 'all' },
        actor: actorOf(c),
        message: `test notification by ${actorOf(c)}: ${results.map((r) => `${r.channel} ${r.ok ? 'delivered' : `failed (${r.error})`}`).join(', ') || 'no channels'}`,
        data: { results },
      },
    ]);
    return c.json({ items: results });
  });
}

function silenceParam(c: Context): string {
  const parsed = silenceIdSchema.safeParse(c.req.param('id'));
  if (!parsed.success) throw badRequest('path parameter id', parsed.error);
  return parsed.data;
}

function describeMatchers(silence: Silence): string {
  const parts = [
    ...(silence.matchers.rule === undefined ? [] : [`rule=${silence.matchers.rule}`]),
    ...(silence.matchers.subject === undefined ? [] : [`subject=${silence.matchers.subject}`]),
  ];
  return parts.join(' ');
}
