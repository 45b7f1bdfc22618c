// Request parsing shared by the API's route modules: JSON bodies against a schema, with errors
// that name the path of each problem, and the actor an action is recorded under.
import type { Context } from 'hono';
import type { z } from 'zod';
import { ContinuumError } from '../../core/errors.js';

export function badRequest(where: string, error: z.ZodError): ContinuumError {
  const problems = error.issues.map((i) => ({
    path: [where, ...i.path].join('.'),
    message: i.message.replace(/^Invalid input: /, ''),
  }));
  return new ContinuumError(
    'CONTINUUM_ERR_BAD_REQUEST',
    `invalid ${where}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`,
    { details: { problems } },
  );
}

export async function jsonBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const text = await c.req.text();
  let value: unknown = undefined;
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch {
      throw new ContinuumError('CONTINUUM_ERR_BAD_REQUEST', 'invalid body: expected JSON');
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw badRequest('body', parsed.error);
  return parsed.data;
}

export function actorOf(c: Context): string {
  return c.req.header('x-continuum-actor')?.slice(0, 64) || 'api';
}
