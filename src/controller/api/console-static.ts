// Serves the browser console (issue 7, docs/console.md) at `/`: the files Vite builds into
// dist/console/, found relative to this module so it works both from dist/ (the installed package)
// and from source through tsx. Only GET `/`, `/index.html` and `/assets/*` are answered here, so
// /v1/* and /healthz are untouched whatever order routes are added in.
import { readFile, stat } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, Hono } from 'hono';

export interface ConsoleStaticOptions {
  /** The built console; default: dist/console beside the compiled controller. */
  dir?: string;
}

/** Larger files are not the console's: refuse rather than read them into memory. */
export const consoleFileBytesMax = 16 * 1024 * 1024;

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

// The console talks only to its own origin; nothing may frame it (clickjacking of actions).
const contentSecurityPolicy =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/** Where the built console may be: beside the compiled module (dist/), or dist/ of the repository (tsx). */
export function consoleDirCandidates(moduleUrl: string = import.meta.url): string[] {
  return [
    fileURLToPath(new URL('../../console/', moduleUrl)),
    fileURLToPath(new URL('../../../dist/console/', moduleUrl)),
  ];
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** The first candidate holding an index.html, looked up at each request so a later build is seen. */
async function findRoot(options: ConsoleStaticOptions): Promise<string | undefined> {
  const candidates = options.dir === undefined ? consoleDirCandidates() : [options.dir];
  for (const dir of candidates) if (await isFile(resolve(dir, 'index.html'))) return resolve(dir);
  return undefined;
}

/**
 * The file a request path names inside root, or undefined when it could step outside it (`..`,
 * encoded or not, backslashes, NUL) or is malformed.
 */
export function fileWithin(root: string, requestPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(requestPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '..' || s === '.')) return undefined;
  const file = resolve(root, ...segments);
  return file.startsWith(root + sep) ? file : undefined;
}

function notBuilt(c: Context): Response {
  return c.text(
    'The Continuum console was not built: dist/console/index.html is missing. Run `npm run build` and reload.\n',
    404,
  );
}

async function serveFile(c: Context, file: string, cacheControl: string): Promise<Response> {
  const info = await stat(file).catch(() => undefined);
  if (info === undefined || !info.isFile()) return c.text('Not found.\n', 404);
  if (info.size > consoleFileBytesMax) return c.text('Not found.\n', 404);
  const body = await readFile(file);
  return c.body(body, 200, {
    'content-type': contentTypes[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'cache-control': cacheControl,
    'x-content-type-options': 'nosniff',
    'content-security-policy': contentSecurityPolicy,
    'referrer-policy': 'no-referrer',
  });
}

export function mountConsole(app: Hono, options: ConsoleStaticOptions = {}): void {
  // index.html names the current hashed assets, so it is revalidated on every load.
  const index = async (c: Context) => {
    const root = await findRoot(options);
    if (root === undefined) return notBuilt(c);
    return serveFile(c, resolve(root, 'index.html'), 'no-cache');
  };
  app.get('/', index);
  app.get('/index.html', index);
  app.get('/assets/*', async (c) => {
    const root = await findRoot(options);
    if (root === undefined) return notBuilt(c);
    const file = fileWithin(root, c.req.path.slice(1));
    if (file === undefined) return c.text('Refused: the path leaves the console directory.\n', 400);
    // Vite puts a content hash in every asset's name: a name never changes meaning.
    return serveFile(c, file, 'public, max-age=31536000, immutable');
  });
}
