// Runs the uvu suites like uvu's own bin (`node --import tsx scripts/uvu-run.mjs <dir> <pattern>`),
// then exits with uvu's code once every suite has finished. A handle some test left open (a
// socket, a timer, a child's pipe) must not keep the whole run waiting until CI's time limit:
// it is named on stderr, so it can be found and closed, and the run ends.
// uvu prints a failure's details right after its file, which in a long run is far from the end
// (and CI may keep only the tail): every failure's headline and message are repeated last.
import { parse } from 'uvu/parse';
import { run } from 'uvu/run';

const [dir = 'spec', pattern] = process.argv.slice(2);
process.env.FORCE_COLOR ??= '1';
const failures = [];
const stripAnsi = (text) => text.replace(/\x1b\[[0-9;]*m/g, '');
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => {
  const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
  if (text.includes(' FAIL ')) {
    const lines = stripAnsi(text).split('\n');
    lines.forEach((line, i) => {
      if (!line.trimStart().startsWith('FAIL ')) return;
      // The message may span lines (diagnostics appended to it): keep them up to the blank line
      // before the stack, at most 80.
      const message = [];
      for (const next of lines.slice(i + 1, i + 81)) {
        if (/^\s+at /.test(next) || next.trimStart().startsWith('FAIL ') || (next.trim() === '' && message.length > 0)) break;
        if (next.trim() !== '') message.push(`      ${next.trim().slice(0, 300)}`);
      }
      failures.push(`${line.trim()}\n${message.join('\n')}`);
    });
  }
  return write(chunk, ...rest);
};
const ctx = await parse(dir, pattern, { cwd: process.cwd() });
await run(ctx.suites, {});
const code = process.exitCode ?? 0;
if (failures.length > 0) console.log(`[uvu-run] ${failures.length} failed:\n${failures.map((f) => `  ${f}`).join('\n')}`);
// Give well-behaved suites a moment to close what they were closing, then report and leave.
setTimeout(() => {
  const left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
  if (left.length > 0) console.error(`[uvu-run] still open after every suite finished (exiting anyway): ${[...new Set(left)].join(', ')}`);
  process.exit(code);
}, 2000).unref();
