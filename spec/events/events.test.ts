/**
 * Lifecycle events: the hub over the embedded store, SSE through a listening server on
 * 127.0.0.1, and signed webhook deliveries to a real HTTP server with retries.
 */
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../src/api/app.ts';
import { parseRateLimits } from '../../src/core/lifecycle.ts';
import { EventHub, eventId, type LifecycleEvent } from '../../src/events/hub.ts';
import { InstanceIndex } from '../../src/gateway/instance-index.ts';
import { MemoryOutbox } from '../../src/events/outbox.ts';
import { signBody, WebhookSender } from '../../src/events/webhook.ts';
import { WebhookRelay } from '../../src/events/webhook-relay.ts';
import { MemoryStore } from '../../src/store/memory.ts';
import { loadTestCatalog } from '../helpers/catalog.ts';
import { memoryLogger } from '../helpers/log.ts';
import { makeInstance } from '../helpers/specs.ts';
import { collectSse, type SseFrame } from '../helpers/sse.ts';

const t = suite('events: hub, SSE and webhooks');
const KEY = 'events-key-0123456789';
const dir = mkdtempSync(path.join(tmpdir(), 'poseidon-events-'));
t.after(() => rmSync(dir, { recursive: true, force: true }));

/** A hub over a real instance view of `store`, as `serve` wires it. */
async function hubFor(store: MemoryStore, expiringSoonMs: number): Promise<{ hub: EventHub; index: InstanceIndex }> {
  const index = new InstanceIndex(store, { refreshMs: 60_000, log: memoryLogger() });
  await index.start();
  return { hub: new EventHub(store, index, expiringSoonMs), index };
}

async function until<T>(what: string, fn: () => T | undefined, ms = 3000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) {
    const v = fn();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

t('status changes, failures, expiry and expiring-soon become events for matching subscribers', async () => {
  const store = new MemoryStore();
  const { hub, index } = await hubFor(store, 400);
  hub.start();
  const red: LifecycleEvent[] = [];
  const all: LifecycleEvent[] = [];
  hub.subscribe({ team: 'red' }, (e) => red.push(e));
  hub.subscribe({}, (e) => all.push(e));
  const now = Date.now();
  const a = makeInstance({ id: 'a'.repeat(24), team: 'red', createdAt: now, expiresAt: now + 600 });
  const b = makeInstance({ id: 'b'.repeat(24), team: 'blue', owner: 'team:blue', createdAt: now, expiresAt: now + 60_000 });
  await store.createInstance(a, now);
  await store.createInstance(b, now);
  await store.updateInstance(a.id, { status: 'running' }, now);
  await store.updateInstance(b.id, { status: 'failed', reason: 'boom' }, now);
  await until('expiring', () => red.find((e) => e.type === 'expiring'));
  await store.updateInstance(a.id, { status: 'stopped', reason: 'expired' }, Date.now());
  await until('expired', () => red.find((e) => e.type === 'expired'));
  assert.equal(red.map((e) => [e.type, e.instance.status]), [['status', 'pending'], ['status', 'running'], ['expiring', 'running'], ['expired', 'stopped']]);
  assert.ok(red.every((e) => e.instance.team === 'red'));
  assert.ok(all.some((e) => e.type === 'failed' && e.instance.reason === 'boom'), JSON.stringify(all.map((e) => [e.type, e.instance.id.slice(0, 2), e.instance.status, e.instance.reason])));
  hub.stop();
  index.stop();
});

t('an event\'s id is the same for the same state anywhere, and differs once a warm-pool member is claimed', () => {
  const member = makeInstance({ team: '~pool', owner: 'pool:pooled', status: 'running', generation: 1, epoch: 1 });
  const claimed = { ...member, team: 'team-a', owner: 'team:team-a', updatedAt: member.updatedAt + 5 };
  assert.is(eventId('status', member), eventId('status', { ...member, updatedAt: member.updatedAt + 9 }), 'derived from state, not from the write');
  assert.is.not(eventId('status', claimed), eventId('status', member), 'the owner\'s running is not the pool\'s');
  assert.is.not(eventId('status', { ...member, generation: 2 }), eventId('status', member), 'a restart is a new event');
});

t('SSE streams a snapshot, then queue positions and status changes, over a real socket', async () => {
  mkdirSync(path.join(dir, 'web'));
  writeFileSync(path.join(dir, 'web', 'challenge.yaml'), 'id: web\nname: web\nimage: busybox:1.35\nexpose: [{ name: web, port: 80 }]\n');
  const store = new MemoryStore();
  const { hub, index } = await hubFor(store, 60_000);
  hub.start();
  const lifecycle = { teamLimit: 0, capacity: 1, rateLimits: parseRateLimits([]), renewMaxLoad: 1, idempotencyTtlMs: 1000, flagSecret: 'x'.repeat(20), flagRetentionMs: 1000 };
  const app = buildApp({ store, catalog: await loadTestCatalog(dir), apiKey: KEY, baseDomain: 'ctf.test', lifecycle, events: hub });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const post = async (team: string) => (await fetch(`${url}/v1/instances`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/json' }, body: JSON.stringify({ challenge: 'web', team }) })).json() as Promise<{ id: string }>;
  try {
    const first = await post('a');
    const q1 = await post('b');
    const q2 = await post('c');
    const ac = new AbortController();
    const res = await fetch(`${url}/v1/instances/${q2.id}/events`, { headers: { 'x-api-key': KEY }, signal: ac.signal });
    assert.is(res.headers.get('content-type'), 'text/event-stream');
    const frames: SseFrame[] = [];
    void collectSse(res.body as AsyncIterable<Uint8Array>, frames).catch(() => undefined);
    await until('snapshot', () => frames[0]);
    assert.equal([frames[0]!.event, frames[0]!.data.instance.status, frames[0]!.data.instance.queue?.position], ['status', 'queued', 2]);
    await fetch(`${url}/v1/instances/${q1.id}`, { method: 'DELETE', headers: { 'x-api-key': KEY } });
    const moved = await until('queue event', () => frames.find((f) => f.event === 'queue'));
    assert.is(moved.data.instance.queue?.position, 1);
    await store.updateInstance(first.id, { desired: 'stopped', status: 'stopped' }, Date.now());
    await store.admit(q2.id, Date.now(), 1, { expiresAt: Date.now() + 60_000, maxExpiresAt: Date.now() + 120_000 });
    const admitted = await until('admitted', () => frames.find((f) => f.event === 'status' && f.data.instance.status === 'pending'));
    assert.is(admitted.data.instance.id, q2.id);
    assert.ok(frames.every((f) => f.data.instance.id === q2.id), 'only this instance');
    ac.abort();
  } finally {
    hub.stop();
    index.stop();
    await app.close();
  }
});

t('webhooks are signed, retried with backoff until accepted, delivered in order, every attempt under the event\'s id', async () => {
  const SECRET = 'webhook-secret-0123456789';
  const got: { body: string; sig: string; type: string }[] = [];
  const attempts: string[] = [];
  let failuresLeft = 2;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      attempts.push(String(req.headers['x-poseidon-delivery']));
      if (failuresLeft-- > 0) { res.writeHead(503).end(); return; }
      got.push({ body, sig: String(req.headers['x-poseidon-signature']), type: String(req.headers['x-poseidon-event']) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const log = memoryLogger();
  const outbox = new MemoryOutbox();
  const relay = new WebhookRelay({ outbox, sender: new WebhookSender({ url: `http://127.0.0.1:${port}/hook`, secret: SECRET, log, baseDelayMs: 20, attempts: 5 }), token: () => 1, log });
  const { hub } = await hubFor(new MemoryStore(), 1000);
  try {
    const inst = makeInstance({ id: 'c'.repeat(24) });
    const first = hub.event('status', inst);
    assert.ok(await outbox.append(first));
    assert.ok(await outbox.append(hub.event('failed', { ...inst, status: 'failed', reason: 'x' })));
    assert.not.ok(await outbox.append(hub.event('status', inst)), 'the same change seen again is not queued twice');
    relay.start();
    await until('two deliveries', () => (got.length === 2 ? true : undefined), 10_000);
    assert.equal(got.map((g) => g.type), ['status', 'failed']);
    assert.equal(attempts.slice(0, 3), [first.id, first.id, first.id], 'retries carry the same delivery id');
    for (const g of got) {
      assert.is(g.sig, signBody(SECRET, g.body));
      assert.is(g.sig, `sha256=${createHmac('sha256', SECRET).update(g.body).digest('hex')}`);
    }
    assert.is(JSON.parse(got[0]?.body ?? '{}').id, first.id);
    assert.is(log.lines.filter((l) => l.msg === 'webhook delivery failed').length, 2);
    assert.not.ok(JSON.stringify(log.lines).includes(SECRET));
  } finally {
    await relay.stop();
    server.close();
  }
});

t('a full outbox trims the oldest undelivered event, never the one in flight, and says how many', async () => {
  const got: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => { release = r; });
  let arrived = 0;
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { arrived++; void gate.then(() => { got.push(JSON.parse(body).instance.reason); res.writeHead(204).end(); }); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const log = memoryLogger();
  const outbox = new MemoryOutbox({ maxEntries: 2 });
  let dropped = 0;
  const sender = new WebhookSender({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}/`, secret: 'webhook-secret-0123456789', log });
  const relay = new WebhookRelay({ outbox, sender, token: () => 1, log, dropped: (n) => { dropped += n; } });
  const { hub } = await hubFor(new MemoryStore(), 1000);
  try {
    relay.start();
    // Distinct instances: the same change of one instance would be one event.
    const event = (reason: string, n: number): LifecycleEvent => hub.event('status', makeInstance({ id: String(n).repeat(24), reason }));
    await outbox.append(event('one', 1));
    relay.poke();
    await until('the first in flight', () => (arrived === 1 ? true : undefined), 10_000);
    for (const [n, reason] of ['two', 'three', 'four'].entries()) await outbox.append(event(reason, n + 2));
    release();
    await until('deliveries', () => (got.length === 3 ? true : undefined), 10_000);
    assert.equal(got, ['one', 'three', 'four']);
    assert.is(dropped, 1);
    assert.is(log.lines.filter((l) => l.msg.startsWith('webhook outbox trimmed')).length, 1);
  } finally {
    await relay.stop();
    server.close();
  }
});

t.run();
