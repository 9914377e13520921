// The HTTP server of `mixtape lab`: serves the lab page (bundled by scripts/build.mjs into
// dist/lab.js), gpu.js's own browser build from node_modules (no CDN: the lab works offline)
// and the files of one run directory under /run/. Nothing else: every other path is a 404,
// and a /run/ path that leaves the run directory ("..", an encoded %2e%2e or %2f, an absolute
// path, a symlink pointing out) is refused before any file is opened.
//
// Every response carries COOP same-origin + COEP require-corp, which make the page
// cross-origin isolated (crossOriginIsolated === true: SharedArrayBuffer, hence threads, are
// allowed), and CORP same-origin so the page's own resources pass require-corp.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';

export interface LabServerOptions {
  /** The folder holding lab.js and lab-worker.js (and their .map), the bundled page and worker scripts. */
  assets: string;
  /** gpu.js's browser build (node_modules/gpu.js/dist/gpu-browser.min.js). */
  gpuJs: string;
  /** The run directory to offer the page (optional). */
  runDir?: string;
  /** 0 (default): a free port. */
  port?: number;
}

export interface LabServer { server: Server; url: string; close(): Promise<void> }

/** What /run/ answers: the run directory's files, or why it is not a run. */
export interface RunListing { dir: string | null; files: string[]; checkpoint: boolean; reason: string | null }

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json', '.json': 'application/json',
  '.jsonl': 'application/x-ndjson', '.safetensors': 'application/octet-stream'
};

const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

export const LAB_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mixtape lab</title><link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
<script src="/gpu-browser.min.js"></script>
<script type="module" src="/lab.js"></script>
</head><body><p id="loading">loading the lab…</p></body></html>
`;

/** The listing of a run directory: config.json or checkpoint.safetensors make it a run. */
export function listRun(dir: string | undefined): RunListing {
  if (!dir) return { dir: null, files: [], checkpoint: false, reason: 'no run directory was given (mixtape lab RUN_DIR)' };
  const files = readdirSync(dir, { withFileTypes: true }).filter((f) => f.isFile()).map((f) => f.name).sort();
  const checkpoint = files.includes('checkpoint.safetensors');
  const reason = checkpoint || files.includes('config.json') ? null
    : `${dir} is not a run directory: it has neither checkpoint.safetensors nor config.json (mixtape train --out DIR writes them)`;
  return { dir, files, checkpoint, reason };
}

/**
 * The file under `root` that the URL path `rest` (still percent-encoded) names, or null if it
 * names nothing there. Decodes once, then refuses NUL, backslashes, absolute paths and any
 * ".." segment; finally the real path (symlinks resolved) must still lie inside root's.
 */
export function resolveInside(root: string, rest: string): string | null {
  let decoded: string;
  try { decoded = decodeURIComponent(rest); } catch { return null; }
  if (decoded === '' || decoded.includes('\0') || decoded.includes('\\') || isAbsolute(decoded)) return null;
  if (decoded.split('/').some((s) => s === '..' || s === '.')) return null;
  const path = join(root, decoded);
  if (!existsSync(path)) return null;
  const real = realpathSync(path), realRoot = realpathSync(root);
  const rel = relative(realRoot, real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..')) return null;
  return statSync(real).isFile() ? real : null;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head: boolean): void {
  res.writeHead(status, { ...ISOLATION, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function handle(o: LabServerOptions, req: IncomingMessage, res: ServerResponse): void {
  const head = req.method === 'HEAD';
  if (req.method !== 'GET' && !head) return send(res, 405, 'text/plain', 'only GET and HEAD\n', head);
  // The raw path, not new URL(): URL would resolve "/run/../x" to "/x" before we could refuse it.
  const path = (req.url ?? '/').split(/[?#]/)[0]!;
  const notFound = () => send(res, 404, 'text/plain', 'not found\n', head);
  if (path === '/' || path === '/index.html') return send(res, 200, TYPES['.html']!, LAB_PAGE, head);
  if (/^\/lab(-worker)?\.js(\.map)?$/.test(path)) {
    const file = join(o.assets, path.slice(1));
    return existsSync(file) ? send(res, 200, TYPES[path.endsWith('.map') ? '.map' : '.js']!, readFileSync(file), head) : notFound();
  }
  if (path === '/gpu-browser.min.js') return send(res, 200, TYPES['.js']!, readFileSync(o.gpuJs), head);
  if (path === '/run/') {
    let listing: RunListing;
    try { listing = listRun(o.runDir); } catch (e) { listing = { dir: o.runDir ?? null, files: [], checkpoint: false, reason: `${o.runDir}: ${(e as Error).message}` }; }
    return send(res, 200, TYPES['.json']!, JSON.stringify(listing), head);
  }
  if (path.startsWith('/run/') && o.runDir) {
    const file = resolveInside(o.runDir, path.slice('/run/'.length));
    if (file === null) return notFound();
    const ext = /\.[\w]+$/.exec(file)?.[0] ?? '';
    return send(res, 200, TYPES[ext] ?? 'application/octet-stream', readFileSync(file), head);
  }
  return notFound();
}

/** Starts the lab's server on 127.0.0.1 (never another interface): resolves once it listens. */
export async function startLabServer(o: LabServerOptions): Promise<LabServer> {
  const server = createServer((req, res) => {
    try {
      handle(o, req, res);
    } catch (e) {
      if (!res.headersSent) send(res, 500, 'text/plain', `lab server: ${(e as Error).message}\n`, false);
      else res.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(o.port ?? 0, '127.0.0.1', resolve); });
  const { port } = server.address() as { port: number };
  return {
    server, url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
