// Headless Chromium driven over the DevTools protocol, for the report's browser test.
//
// Transport: --remote-debugging-pipe (JSON messages ending in NUL, written to the
// browser's fd 3 and read from its fd 4). Node 20 has no stable global WebSocket, and
// the other route, --enable-logging=stderr, prints console messages without their level
// (console.log and console.error both appear as "INFO:CONSOLE") and never reports a
// resource that failed to load; the protocol reports all three precisely:
//   Runtime.consoleAPICalled (type 'error'/'assert'), Runtime.exceptionThrown,
//   Log.entryAdded (level 'error', e.g. "Failed to load resource"),
// and Network.requestWillBeSent lists every request, which proves the page self-contained.

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Why the browser test cannot run here, or null when it can. */
export function chromiumMissing(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not found (Debian: apt-get install -y chromium; or set CHROMIUM=/path/to/chromium)`;
}

interface Message {
  id?: number;
  method?: string;
  params?: any;
  result?: any;
  error?: { message: string };
  sessionId?: string;
}

export interface PageLoad {
  /** Console errors, uncaught exceptions and error log entries (failed loads), as text. */
  errors: string[];
  /** Every URL the page requested, the page itself excluded. */
  requests: string[];
}

const TIMEOUT_MS = 20_000;

export interface LaunchOptions {
  /**
   * Flags about the GPU, replacing the default `--disable-gpu` (the report test renders
   * without one). The GPU-backend browser test passes ANGLE/WebGPU flags here.
   */
  gpuFlags?: string[];
  /** Milliseconds each protocol command may take (default 20 s). */
  timeoutMs?: number;
}

/** A console error, uncaught exception or error log entry as one line of text; null for other events. */
export function pageError(m: { method?: string; params?: any }): string | null {
  const p = m.params;
  if (m.method === 'Runtime.consoleAPICalled' && (p.type === 'error' || p.type === 'assert')) {
    return `console.${p.type}: ${p.args.map((a: any) => a.value ?? a.description).join(' ')}`;
  }
  if (m.method === 'Runtime.exceptionThrown') return `exception: ${p.exceptionDetails.exception?.description ?? p.exceptionDetails.text}`;
  if (m.method === 'Log.entryAdded' && p.entry.level === 'error') return `log: ${p.entry.text} ${p.entry.url ?? ''}`;
  return null;
}

export class Browser {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>();
  private readonly listeners: Array<(m: Message) => void> = [];
  private stderr = '';
  private session = '';

  private constructor(private readonly proc: ChildProcess, private readonly profile: string, private readonly timeoutMs = TIMEOUT_MS) {
    let buffer = '';
    proc.stdio[4]!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      for (let end = buffer.indexOf('\0'); end >= 0; end = buffer.indexOf('\0')) {
        this.dispatch(JSON.parse(buffer.slice(0, end)) as Message);
        buffer = buffer.slice(end + 1);
      }
    });
    proc.stderr!.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString()).slice(-4000); });
    proc.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`chromium exited (${code}); stderr:\n${this.stderr}`));
      this.pending.clear();
    });
  }

  /** Starts headless Chromium with a fresh profile and attaches to its page. */
  static async launch(options: LaunchOptions = {}): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), 'mixtape-chromium-'));
    const proc = spawn(CHROMIUM, [
      '--headless', '--no-sandbox', ...(options.gpuFlags ?? ['--disable-gpu']), '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--hide-scrollbars', `--user-data-dir=${profile}`, '--remote-debugging-pipe', 'about:blank',
    ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    const browser = new Browser(proc, profile, options.timeoutMs);
    try {
      const { targetInfos } = await browser.send('Target.getTargets');
      const page = (targetInfos as Array<{ type: string; targetId: string }>).find((t) => t.type === 'page');
      if (!page) throw new Error('chromium: no page target');
      browser.session = (await browser.send('Target.attachToTarget', { targetId: page.targetId, flatten: true })).sessionId;
      for (const domain of ['Runtime', 'Log', 'Page', 'Network']) await browser.send(`${domain}.enable`);
      await browser.send('Emulation.setDeviceMetricsOverride', { width: 1280, height: 2000, deviceScaleFactor: 1, mobile: false });
    } catch (e) {
      await browser.close();
      throw e;
    }
    return browser;
  }

  private dispatch(m: Message): void {
    const p = m.id !== undefined ? this.pending.get(m.id) : undefined;
    if (p) {
      this.pending.delete(m.id!);
      if (m.error) p.reject(new Error(`chromium: ${m.error.message}`));
      else p.resolve(m);
    } else {
      for (const l of this.listeners) l(m);
    }
  }

  /** One protocol command on the attached page (browser-level before attaching). */
  send(method: string, params: object = {}): Promise<any> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
      return Promise.reject(new Error(`chromium: ${method}: the browser has exited (${this.proc.exitCode ?? this.proc.signalCode}); stderr:\n${this.stderr}`));
    }
    const id = ++this.nextId;
    const msg = { id, method, params, ...(this.session ? { sessionId: this.session } : {}) };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`chromium: ${method} timed out`)); }, this.timeoutMs);
      this.pending.set(id, {
        resolve: (m) => { clearTimeout(timer); resolve(m.result); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      (this.proc.stdio[3] as Writable).write(JSON.stringify(msg) + '\0');
    });
  }

  /** The last lines Chromium wrote to stderr (GPU process errors land there). */
  get stderrTail(): string { return this.stderr; }

  /** Calls fn with every protocol event of the page until the returned function is called. */
  listen(fn: (m: { method?: string; params?: any }) => void): () => void {
    this.listeners.push(fn);
    return () => { const i = this.listeners.indexOf(fn); if (i >= 0) this.listeners.splice(i, 1); };
  }

  /** Opens a file (or an http:// URL), waits for its load event, and reports errors and requests seen meanwhile. */
  async open(path: string): Promise<PageLoad> {
    const url = /^https?:\/\//.test(path) ? path : pathToFileURL(path).href;
    const result: PageLoad = { errors: [], requests: [] };
    let loaded!: () => void;
    const loadEvent = new Promise<void>((resolve) => { loaded = resolve; });
    const listener = (m: Message): void => {
      const p = m.params;
      const error = pageError(m);
      if (error !== null) {
        result.errors.push(error);
      } else if (m.method === 'Network.requestWillBeSent' && p.request.url !== url) {
        result.requests.push(p.request.url);
      } else if (m.method === 'Page.loadEventFired') {
        loaded();
      }
    };
    this.listeners.push(listener);
    let timer: NodeJS.Timeout | undefined;
    try {
      const nav = await this.send('Page.navigate', { url });
      if (nav.errorText) throw new Error(`chromium: cannot open ${url}: ${nav.errorText}`);
      await Promise.race([loadEvent, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`chromium: ${url} did not load`)), this.timeoutMs); })]);
      await new Promise((resolve) => setTimeout(resolve, 250)); // late console messages
    } finally {
      clearTimeout(timer); // a pending timer would keep the test process alive
      this.listeners.splice(this.listeners.indexOf(listener), 1);
    }
    return result;
  }

  /**
   * Evaluates a JavaScript expression in the page and returns its (JSON) value; with
   * awaitPromise, the value a returned promise resolves to.
   */
  async evaluate<T>(expression: string, { awaitPromise = false } = {}): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise });
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      throw new Error(`chromium: evaluate failed: ${d.exception?.description ?? d.text}`);
    }
    return r.result.value as T;
  }

  /** A PNG of the whole page (1280 px wide), in the light or dark colour scheme; written to `path`. */
  async screenshot(path: string, scheme: 'light' | 'dark' = 'light'): Promise<Buffer> {
    await this.send('Emulation.setEmulatedMedia', { features: [{ name: 'prefers-color-scheme', value: scheme }] });
    const height = await this.evaluate<number>('document.documentElement.scrollHeight');
    const { data } = await this.send('Page.captureScreenshot', {
      format: 'png', captureBeyondViewport: true, clip: { x: 0, y: 0, width: 1280, height, scale: 1 },
    });
    const png = Buffer.from(data as string, 'base64');
    writeFileSync(path, png);
    return png;
  }

  /** Stops the browser, waits for it to exit, then deletes its profile. */
  async close(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      let timer: NodeJS.Timeout | undefined;
      const exited = new Promise((resolve) => this.proc.once('exit', resolve));
      this.proc.kill();
      await Promise.race([exited, new Promise((resolve) => { timer = setTimeout(resolve, 5000); })]);
      clearTimeout(timer);
    }
    // A crashed GPU process's children may still write into the profile for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        rmSync(this.profile, { recursive: true, force: true, maxRetries: 3 });
        break;
      } catch (e) {
        if (attempt >= 3) { console.log(`# chromium: could not remove its profile ${this.profile}: ${(e as Error).message}`); break; }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }
}
