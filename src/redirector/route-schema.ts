// The zod schema of a RouteTable (src/core/model.ts) as it arrives from a controller or from the
// cache file: a message from another process is checked at the boundary (CONVENTIONS.md item 12).
// Unknown fields are dropped, so a newer controller can add fields without breaking old redirectors.
import { z } from 'zod';
import type { RouteTable } from '../core/model.js';

const portSchema = z.int().min(1).max(65_535);

export const routeSchema = z.object({
  workload: z.string().min(1),
  endpoint: z.string().min(1),
  listenHost: z.string().min(1),
  listenPort: portSchema,
  epoch: z.int().min(0),
  target: z
    .object({ node: z.string().min(1), host: z.string().min(1), port: portSchema })
    .nullable(),
});

export const routeTableSchema = z.object({
  revision: z.int().min(0),
  routes: z.array(routeSchema),
}) satisfies z.ZodType<RouteTable>;

/** Parses JSON text into a RouteTable, or says where it is wrong. */
export function parseRouteTable(
  text: string,
): { ok: true; table: RouteTable } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `not JSON: ${(error as Error).message}` };
  }
  const result = routeTableSchema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.');
    return { ok: false, error: `${where}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, table: result.data };
}
