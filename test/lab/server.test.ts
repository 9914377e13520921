// The lab's HTTP server over real requests: the page and its scripts with the
// cross-origin-isolation headers, the run directory's files, and nothing else — every way
// out of the run directory (.., encoded %2e%2e and %2f, absolute paths, a symlink) is a 404.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startLabServer, type LabServer } from '../../src/lab/server.js';

let root: string, lab: LabServer;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'mixtape-lab-server-'));
  const assets = join(root, 'assets'), run = join(root, 'run');
  mkdirSync(assets); mkdirSync(run); mkdirSync(join(run, 'sub'));
  writeFileSync(join(assets, 'lab.js'), 'console.log("lab")');
  writeFileSync(join(root, 'gpu.js'), '/* gpu */');
  writeFileSync(join(root, 'secret.txt'), 'SECRET');
  writeFileSync(join(run, 'config.json'), '{"model":"moe"}');
  writeFileSync(join(run, 'sub', 'note.txt'), 'inside');
  symlinkSync(join(root, 'secret.txt'), join(run, 'escape.txt'));
  symlinkSync(root, join(run, 'up'));
  lab = await startLabServer({ assets, gpuJs: join(root, 'gpu.js'), runDir: run });
});

after(async () => { await lab.close(); rmSync(root, { recursive: true, force: true }); });

/** A GET with the path sent byte for byte (no URL normalisation on the way). */
function get(path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const { port } = lab.server.address() as { port: number };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('listens on 127.0.0.1 at a free port and says so in its URL', () => {
  const a = lab.server.address() as { address: string; port: number };
  assert.equal(a.address, '127.0.0.1');
  assert.ok(a.port > 0);
  assert.equal(lab.url, `http://127.0.0.1:${a.port}/`);
});

test('serves the page, its script and gpu.js with the cross-origin-isolation headers', async () => {
  for (const [path, expect] of [['/', 'src="/lab.js"'], ['/lab.js', 'console.log("lab")'], ['/gpu-browser.min.js', '/* gpu */']] as const) {
    const r = await get(path);
    assert.equal(r.status, 200, path);
    assert.ok(r.body.includes(expect), `${path}: ${r.body.slice(0, 80)}`);
    assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', path);
    assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp', path);
    assert.equal(r.headers['cross-origin-resource-policy'], 'same-origin', path);
  }
  assert.ok(!(await get('/')).body.includes('http'), 'the page loads nothing from another origin');
});

test('serves the run directory and lists it', async () => {
  assert.equal((await get('/run/config.json')).body, '{"model":"moe"}');
  assert.equal((await get('/run/sub/note.txt')).body, 'inside');
  const listing = JSON.parse((await get('/run/')).body);
  assert.deepEqual(listing.files, ['config.json'], 'a symlink is not listed');
  assert.equal(listing.reason, null);
});

test('refuses every path out of the run directory and everything else', async () => {
  const attempts = [
    '/run/../secret.txt', '/run/sub/../../secret.txt', '/run/%2e%2e/secret.txt', '/run/%2E%2E%2Fsecret.txt', '/run/..%2fsecret.txt',
    '/run/sub/%2e%2e/%2e%2e/secret.txt', `/run/${encodeURIComponent(join(root, 'secret.txt'))}`, `/run//${join(root, 'secret.txt').slice(1)}`,
    '/run/escape.txt', '/run/up/secret.txt', '/run/%00config.json', '/run/..%5csecret.txt', '/run/%zz', '/../secret.txt', '/secret.txt',
    '/assets/lab.js', '/package.json', '/node_modules/gpu.js/package.json', '/lab.js/../secret.txt',
  ];
  for (const path of attempts) {
    const r = await get(path);
    assert.equal(r.status, 404, `${path} answered ${r.status}: ${r.body.slice(0, 60)}`);
    assert.ok(!r.body.includes('SECRET'), path);
  }
  assert.equal((await get('/', 'POST')).status, 405);
});

test('a directory that is not a run is said to be one in the listing', async () => {
  const other = mkdtempSync(join(tmpdir(), 'mixtape-lab-notrun-'));
  const l = await startLabServer({ assets: root, gpuJs: join(root, 'gpu.js'), runDir: other });
  try {
    const { port } = l.server.address() as { port: number };
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/run/' }, (res) => { let b = ''; res.on('data', (c: Buffer) => { b += c; }); res.on('end', () => resolve(b)); }).on('error', reject).end();
    });
    assert.match(JSON.parse(body).reason, /is not a run directory/);
  } finally {
    await l.close();
    rmSync(other, { recursive: true, force: true });
  }
});

test('mixtape lab: a missing directory, a file or a bad --port is a one-line usage error', async () => {
  const { main } = await import('../../src/cli/main.js');
  const errors: string[] = [];
  const error = console.error;
  console.error = (...a: unknown[]) => { errors.push(a.join(' ')); };
  try {
    assert.equal(await main(['lab', join(root, 'nope')]), 2);
    assert.equal(await main(['lab', join(root, 'secret.txt')]), 2);
    assert.equal(await main(['lab', '--port', '70000']), 2);
    assert.equal(await main(['lab', 'a', 'b']), 2);
  } finally {
    console.error = error;
  }
  assert.match(errors[0]!, /lab: no such directory .*nope/);
  assert.match(errors[1]!, /is a file; give the run directory/);
  assert.match(errors[2]!, /--port must be in 0\.\.65535/);
  assert.match(errors[3]!, /at most one RUN_DIR/);
});
