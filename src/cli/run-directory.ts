// A run directory is written by one process at a time. Two `mixtape train`s on one --out
// would interleave metrics.jsonl and leave a config.json that describes another model than
// the checkpoint; so every command that writes into a run directory first claims it: it
// creates RUN_DIR/.mixtape-lock atomically (O_EXCL: of two processes exactly one succeeds),
// holding the claimant's pid, and removes it when done. A lock whose process no longer runs
// (killed by kill -9 or a power cut) is stale: it is reported and taken over.

import fs from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { processIsRunning } from '../nn/safetensors.js';
import { UsageError } from './errors.js';

export const LOCK = '.mixtape-lock';

interface LockRecord { pid: number; host: string; command: string; since: string }

/** A claimed run directory; release() gives it up (also done when the process exits). */
export interface RunLock {
  readonly dir: string;
  /** Directories this claim created (outermost first), removed by discard(). */
  readonly created: readonly string[];
  release(): void;
  /** Releases the claim and removes the directories it created if they hold nothing else (a command that failed before writing). */
  discard(): void;
}

/**
 * mkdir -p that cannot hang: Node's recursive mkdir retries for ever on some paths (under
 * /proc it gets ENOENT for a directory whose parent exists). Creates each missing component
 * itself, once, and turns every failure into one line naming the flag and the reason.
 */
export function makeDirectory(dir: string, flag: string): string[] {
  const missing: string[] = [];
  let at = dir;
  for (;;) {
    let stat: fs.Stats | undefined;
    try { stat = fs.statSync(at); } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new UsageError(`${flag} ${dir}: cannot use ${at} (${reason(e)})`);
    }
    if (stat) {
      if (!stat.isDirectory()) throw new UsageError(`${flag} ${dir}: ${at} is not a directory`);
      break;
    }
    missing.unshift(at);
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  const created: string[] = [];
  for (const d of missing) {
    try {
      fs.mkdirSync(d);
      created.push(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && fs.statSync(d).isDirectory()) continue; // made by another process meanwhile
      throw new UsageError(`${flag} ${dir}: cannot create the directory ${d} (${reason(e)})`);
    }
  }
  return created;
}

function reason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const words: Record<string, string> = {
    EACCES: 'permission denied', EPERM: 'operation not permitted', EROFS: 'read-only file system', ENOENT: 'the file system does not allow it here',
    ENOSPC: 'no space left on the device', ENOTDIR: 'a part of the path is not a directory', EEXIST: 'a file of that name exists',
  };
  return (err.code && words[err.code]) ?? err.message ?? String(e);
}

function readLock(path: string): LockRecord | null {
  try {
    const r = JSON.parse(fs.readFileSync(path, 'utf8')) as Partial<LockRecord>;
    return typeof r.pid === 'number' && Number.isSafeInteger(r.pid) && r.pid > 0 ? { pid: r.pid, host: String(r.host ?? ''), command: String(r.command ?? '?'), since: String(r.since ?? '?') } : null;
  } catch {
    return null; // unreadable or half-written: treated as stale only when old (see claim)
  }
}

/**
 * Claims `dir` for `command` (creating it if needed): the directory must be creatable and
 * writable, and no running process may hold it. `onStale` hears about a stale lock taken over.
 */
export function claimRunDirectory(dir: string, command: string, options: { flag?: string; onStale?: (message: string) => void } = {}): RunLock {
  const flag = options.flag ?? '--out';
  const created = makeDirectory(dir, flag);
  const path = join(dir, LOCK);
  const record: LockRecord = { pid: process.pid, host: hostname(), command, since: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = fs.openSync(path, 'wx', 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        removeCreated(created);
        throw new UsageError(`${flag} ${dir}: cannot write into the directory (${reason(e)})`);
      }
      const holder = readLock(path);
      const foreign = holder !== null && holder.host !== '' && holder.host !== record.host;
      if (holder === null) {
        // Being written by its creator right now, or garbage: wait for the former a moment.
        const age = Date.now() - (fs.statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0);
        if (age < 2000 && attempt < 20) { sleep(100); continue; }
      } else if (foreign || processIsRunning(holder.pid)) {
        removeCreated(created);
        throw new UsageError(`${dir} is in use by mixtape ${holder.command} (process ${holder.pid}${foreign ? ` on ${holder.host}` : ''}, since ${holder.since}); wait for it to finish or choose another ${flag} (if no mixtape runs there, delete ${path})`);
      }
      if (attempt >= 3) {
        removeCreated(created);
        throw new UsageError(`${dir}: cannot take over the stale lock ${path}; delete it if no mixtape runs there`);
      }
      // Stale: its process is gone. Taken over by renaming it away first (atomic: of two
      // processes that both saw it stale, only one renames this very file).
      const aside = `${path}.stale.${process.pid}`;
      try { fs.renameSync(path, aside); } catch { continue; }
      const moved = readLock(aside);
      if (moved !== null && holder !== null && moved.pid !== holder.pid) {
        // We moved a fresh lock another process took meanwhile: put it back and look again.
        try { fs.linkSync(aside, path); } catch { /* it claimed again meanwhile */ }
        fs.rmSync(aside, { force: true });
        continue;
      }
      fs.rmSync(aside, { force: true });
      options.onStale?.(holder
        ? `${dir} was locked by mixtape ${holder.command} (process ${holder.pid}, since ${holder.since}), which is no longer running: lock taken over`
        : `${dir} held an unreadable lock file: taken over`);
      continue;
    }
    try {
      fs.writeSync(fd, `${JSON.stringify(record)}\n`);
    } finally {
      fs.closeSync(fd);
    }
    break;
  }
  let held = true;
  const release = () => {
    if (!held) return;
    held = false;
    process.off('exit', release);
    // Only our own lock: never one another process took over after ours was removed.
    if (readLock(path)?.pid === process.pid) fs.rmSync(path, { force: true });
  };
  process.on('exit', release);
  return {
    dir, created, release,
    discard: () => { release(); removeCreated(created); },
  };
}

function removeCreated(created: readonly string[]): void {
  for (const d of [...created].reverse()) {
    try { fs.rmdirSync(d); } catch { return; } // not empty: something else is there now
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
