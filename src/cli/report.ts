// `mixtape report`: renders report.html for a run or compare directory.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadReportInput, renderReport } from '../report/render.js';
import type { CompareManifest } from '../report/schema.js';

export function writeReport(dir: string, out?: string): string {
  const runs = loadReportInput(dir);
  const manifestPath = join(dir, 'compare.json');
  const note = existsSync(manifestPath) ? (JSON.parse(readFileSync(manifestPath, 'utf8')) as CompareManifest).note : undefined;
  const path = out ?? join(dir, 'report.html');
  writeFileSync(path, renderReport(runs, note ? { note } : {}));
  return path;
}
