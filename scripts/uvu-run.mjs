// Runs the uvu suites like uvu's own bin (`node --import tsx scripts/uvu-run.mjs <dir> <pattern>`),
// then exits with uvu's code once every suite has finished. A handle some test left open (a
// socket, a timer, a child's pipe) must not keep the whole run waiting until CI's time limit:
// it is named on stderr, so it can be found and closed, and the run ends.
import { parse } from 'uvu/parse';
import { run } from 'uvu/run';

const [dir = 'spec', pattern] = process.argv.slice(2);
process.env.FORCE_COLOR ??= '1';
const ctx = await parse(dir, pattern, { cwd: process.cwd() });
await run(ctx.suites, {});
const code = process.exitCode ?? 0;
// Give well-behaved suites a moment to close what they were closing, then report and leave.
setTimeout(() => {
  const left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
  if (left.length > 0) console.error(`[uvu-run] still open after every suite finished (exiting anyway): ${[...new Set(left)].join(', ')}`);
  process.exit(code);
}, 2000).unref();
