/** `npm run bench [filter]`: runs every bench/*.bench.ts (or those matching filter) and prints a table. */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchResult } from './harness.ts';

const dir = path.dirname(fileURLToPath(import.meta.url));
const filter = process.argv[2] ?? '';
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts') && f.includes(filter)).sort();
const results: BenchResult[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(path.join(dir, f)).href)) as { run(): Promise<BenchResult[]> };
  results.push(...(await mod.run()));
}
for (const r of results) {
  console.log(`${r.ok ? 'ok  ' : 'MISS'} ${r.name}\n     measured: ${r.measured}\n     baseline: ${r.baseline}\n     target:   ${r.target}`);
}
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
