// `mixtape report`: renders report.html for a run or compare directory.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadReportInput, renderReport } from '../report/render.js';

export function writeReport(dir: string, out?: string): string {
  const runs = loadReportInput(dir);
  const path = out ?? join(dir, 'report.html');
  writeFileSync(path, renderReport(runs));
  return path;
}
