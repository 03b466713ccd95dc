/**
 * Challenge trees on disk for catalog tests: write files, apply the tree as a revision.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Catalog } from '../../src/catalog/catalog.ts';
import { loadSnapshot } from '../../src/catalog/load-snapshot.ts';
import type { Instance } from '../../src/core/instance.ts';
import { makeInstance } from '../helpers/specs.ts';

export interface Tree {
  root: string;
  write(rel: string, text: string): void;
  remove(rel: string): void;
  /** Loads the tree as `revision` and applies it at `now`. */
  apply(catalog: Catalog, revision: string, now?: number): Promise<ReturnType<Catalog['apply']>>;
  dispose(): void;
}

export function tree(): Tree {
  const root = mkdtempSync(path.join(tmpdir(), 'poseidon-catalog-'));
  return {
    root,
    write(rel, text) {
      mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      writeFileSync(path.join(root, rel), text);
    },
    remove: (rel) => rmSync(path.join(root, rel), { recursive: true, force: true }),
    apply: async (catalog, revision, now = Date.now()) => catalog.apply(await loadSnapshot({ revision, root, path: '.' }), now),
    dispose: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** `id: … name: … image: busybox … expose: …` plus extra top-level lines. */
export function yaml(id: string, ...extra: string[]): string {
  return [`id: ${id}`, `name: ${id}`, 'image: busybox:1.35', 'expose: [{ name: web, port: 8080 }]', ...extra, ''].join('\n');
}

/** An instance of `challenge` launched with `specHash`. */
export function instanceOf(challenge: string, specHash: string, over: Partial<Instance> = {}): Instance {
  return makeInstance({ challenge, specHash, ...over });
}
