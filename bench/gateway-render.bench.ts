/**
 * Rendering the Traefik configuration for 10,000 instances (HTTP, plus one TCP port on every
 * tenth): the renderer alone, and render + YAML for the file provider. Issue 5's target is an
 * absolute one: under 50 ms (median of 15 runs after warm-up); the bare JSON.stringify of the same
 * document is shown as the same-run reference.
 */
import { createHash } from 'node:crypto';
import { hostPrefix } from '../src/core/naming.ts';
import { renderTraefikConfig, serializeTraefikConfig, type GatewayOptions, type GatewayRoute } from '../src/gateway/traefik.ts';
import type { BenchResult } from './harness.ts';

const N = 10_000;
const RUNS = 15;
const OPTS: GatewayOptions = { baseDomain: 'ctf.example.org', entryPoints: ['web'], poseidonUrl: 'http://poseidon:8080', tls: { entryPoints: ['websecure'], certResolver: 'le' } };

function routes(): GatewayRoute[] {
  const out: GatewayRoute[] = [];
  for (let i = 0; i < N; i++) {
    // Instance ids are random in production (96 bits): no long shared prefixes to compare.
    const id = createHash('sha256').update(String(i)).digest('hex').slice(0, 24);
    const challenge = `chal-${i % 50}`;
    out.push({ instance: id, challenge, name: 'web', protocol: 'http', hostname: `${hostPrefix(id)}.${challenge}.ctf.example.org`, backend: `poseidon-${id}:8080` });
    if (i % 10 === 0) out.push({ instance: id, challenge, name: 'pwn', protocol: 'tcp', hostname: `${hostPrefix(id)}-pwn.${challenge}.ctf.example.org`, backend: `poseidon-${id}:9000` });
  }
  return out;
}

function median(fn: () => void): number {
  for (let i = 0; i < 3; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(RUNS / 2)] as number;
}

export async function run(): Promise<BenchResult[]> {
  const input = routes();
  const cfg = renderTraefikConfig(input, OPTS);
  const json = median(() => JSON.stringify(cfg));
  const render = median(() => renderTraefikConfig(input, OPTS));
  const file = median(() => serializeTraefikConfig(renderTraefikConfig(input, OPTS)));
  const reference = `JSON.stringify of the same document ${json.toFixed(1)} ms`;
  return [
    { name: `render ${N.toLocaleString('en')} instances (object)`, measured: `${render.toFixed(1)} ms median`, baseline: reference, target: '< 50 ms', ok: render < 50 },
    { name: `render + YAML for the file provider, ${N.toLocaleString('en')} instances`, measured: `${file.toFixed(1)} ms median`, baseline: reference, target: '< 50 ms', ok: file < 50 },
  ];
}
