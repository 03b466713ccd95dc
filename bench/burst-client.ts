/**
 * The client side of a burst (goal 4): `count` POSTs fired at once over `count` keep-alive
 * connections opened beforehand (as a platform's HTTP pool holds them), so the latency measured is
 * the server's answer, not connection setup in this process. The same client fires the same burst
 * at a bare fastify route in its own process (`bareServer`): the floor of a burst on this machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface BurstPost {
  status: number;
  body: string;
  /** Epoch ms the request went out. */
  at: number;
  ms: number;
}

function request(agent: http.Agent, url: URL, method: string, headers: Record<string, string>, body?: string): Promise<BurstPost> {
  return new Promise((resolve, reject) => {
    const at = Date.now();
    const t0 = performance.now();
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), at, ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.setTimeout(120_000, () => req.destroy(new Error(`${method} ${url.pathname}: no answer in 120 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Opens `count` connections to `base` (each answers a `GET warmPath`), then fires `bodies.length`
 * POSTs to `postPath` at once; resolves with each POST's answer and latency, in order.
 */
export async function burstPosts(opts: { base: string; warmPath: string; postPath: string; headers: Record<string, string>; bodies: string[] }): Promise<BurstPost[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.bodies.length });
  try {
    const warm = new URL(opts.warmPath, opts.base);
    await Promise.all(opts.bodies.map(() => request(agent, warm, 'GET', opts.headers)));
    const post = new URL(opts.postPath, opts.base);
    const headers = { ...opts.headers, 'content-type': 'application/json' };
    return await Promise.all(opts.bodies.map((b) => request(agent, post, 'POST', headers, b)));
  } finally {
    agent.destroy();
  }
}

/** A bare fastify (`GET /warm`, `POST /bare`) in its own process; `stop` ends it. */
export async function bareServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const script = [
    "const app = require('fastify')();",
    "app.get('/warm', async () => ({ ok: true }));",
    "app.post('/bare', async (req) => ({ ok: true, got: req.body }));",
    "app.listen({ port: 0, host: '127.0.0.1' }).then(() => console.log('PORT ' + app.server.address().port));",
  ].join('\n');
  const proc: ChildProcess = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('bare fastify did not start in 30 s')), 30_000);
    proc.stdout?.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const m = /PORT (\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`bare fastify exited (${code})`)); });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
