/**
 * The CTFd plugin (integrations/ctfd): its Python unittest suite (the plugin in a CTFd stand-in
 * against a real Poseidon on the real Docker engine), delegate mode through the Traefik stand-in,
 * and the instance panel in real headless Chromium. Both need Debian's python3 with Flask, Flask-SQLAlchemy and requests
 * (scripts/ctfd-deps.sh installs them), Docker, and Chromium for the panel: under CI=true a
 * missing one fails these tests; elsewhere they are reported as skipped, loudly.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { traefikSuite } from '../../integrations/ctfd/tests/delegate.traefik.ts';
import { haveChromium, panelSuite, PYTHON } from '../../integrations/ctfd/tests/panel.chromium.ts';
import { CI, haveDocker, ROOT } from '../helpers/deps.ts';

const CTFD_DIR = path.join(ROOT, 'integrations', 'ctfd');
const MODULES = ['flask', 'flask_sqlalchemy', 'sqlalchemy', 'requests'];

let pythonOk: boolean | undefined;
function havePython(): boolean {
  if (pythonOk === undefined) {
    const probe = spawnSync(PYTHON, ['-c', `import ${MODULES.join(', ')}`], { encoding: 'utf8', timeout: 30_000 });
    pythonOk = probe.status === 0;
  }
  if (pythonOk) return true;
  const what = `${PYTHON} with ${MODULES.join(', ')} (Debian: python3-flask python3-flask-sqlalchemy python3-requests; scripts/ctfd-deps.sh)`;
  if (CI) throw new Error(`${what} is required under CI=true but is not available`);
  console.warn(`\n  !! SKIPPED: ${what} not available\n`);
  return false;
}

function enabled(): boolean {
  if (!havePython() || !haveDocker()) return false;
  if (haveChromium()) return true;
  if (CI) throw new Error('Chromium is required under CI=true (/usr/bin/chromium); run scripts/dev-env.sh');
  console.warn('\n  !! SKIPPED: Chromium not available at /usr/bin/chromium\n');
  return false;
}

/** Runs `python3 -m unittest` in integrations/ctfd; bounded, output kept for the failure message. */
function unittest(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const proc = spawn(PYTHON, ['-m', 'unittest', ...args], {
      cwd: CTFD_DIR,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PYTHONDONTWRITEBYTECODE: '1', ...(process.env.POSEIDON_SOURCE_DIR ? { POSEIDON_SOURCE_DIR: process.env.POSEIDON_SOURCE_DIR } : {}), PYTHONUNBUFFERED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const keep = (d: Buffer) => { out = (out + d.toString()).slice(-200_000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    // SIGTERM first: the harness turns it into a clean exit that removes its containers.
    const timer = setTimeout(() => {
      proc.kill('SIGTERM');
      setTimeout(() => proc.kill('SIGKILL'), 60_000).unref();
    }, timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const t = suite('ctfd plugin: python tests');

t('the plugin\'s unittest suite passes against a real Poseidon', async () => {
  if (!havePython() || !haveDocker()) return;
  const { code, out } = await unittest(['discover', '-s', 'tests', '-t', '.', '-v'], 40 * 60_000);
  const ran = /Ran (\d+) tests? in/.exec(out);
  if (code !== 0) assert.unreachable(`python3 -m unittest failed (exit ${code}):\n${out.slice(-15_000)}`);
  assert.ok(ran && Number(ran[1]) >= 40, `ran ${ran?.[1] ?? 'no'} tests`);
  console.log(`  ctfd plugin: ${ran?.[1]} Python tests passed`);
});

t.run();
traefikSuite(() => havePython() && haveDocker()).run();
panelSuite(enabled).run();
