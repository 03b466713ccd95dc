/**
 * The file provider of the Traefik stand-in: a dynamic configuration file (or a directory of
 * them), re-read whenever it changes. Poseidon writes JSON (which is YAML) after a `#` comment
 * header: comment lines are dropped and the rest parsed as JSON; anything else is parsed as YAML.
 * As Traefik does, an empty or unreadable file leaves the last good configuration in place, and
 * in a directory only `.yml`, `.yaml` and `.json` files count (Poseidon's temp files do not).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

type Json = Record<string, any>;

/** Parses one dynamic configuration file's text (JSON after `#` comment lines, else YAML). */
export function parseDynamicConfig(text: string): Json {
  const json = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').trim();
  if (json === '') return {};
  try {
    return JSON.parse(json) as Json;
  } catch {
    const doc: unknown = parseYaml(text);
    if (doc === null || doc === undefined) return {};
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not a mapping');
    return doc as Json;
  }
}

const SECTIONS: [string, string][] = [['http', 'routers'], ['http', 'services'], ['http', 'middlewares'], ['http', 'serversTransports'], ['tcp', 'routers'], ['tcp', 'services'], ['tcp', 'middlewares'], ['udp', 'routers'], ['udp', 'services'], ['tls', 'options']];

/** Merges several files' configurations (a name defined twice: the later file wins, reported). */
function merge(docs: [string, Json][], errors: string[]): Json {
  const out: Json = {};
  for (const [file, doc] of docs) {
    for (const [a, b] of SECTIONS) {
      const src = doc[a]?.[b] as Json | undefined;
      if (!src) continue;
      out[a] ??= {};
      out[a][b] ??= {};
      for (const [k, v] of Object.entries(src)) {
        if (k in out[a][b]) errors.push(`${file}: ${a}.${b}.${k} defined more than once`);
        out[a][b][k] = v;
      }
    }
    if (Array.isArray(doc.tls?.certificates)) {
      out.tls ??= {};
      out.tls.certificates = [...(out.tls.certificates ?? []), ...doc.tls.certificates];
    }
    if (doc.tls?.stores) {
      out.tls ??= {};
      out.tls.stores = { ...(out.tls.stores ?? {}), ...doc.tls.stores };
    }
  }
  return out;
}

export interface FileConfigSource {
  /** The current configuration (re-read if a file changed since the last call). */
  load(): Promise<Json>;
  /** Problems met reading the files, newest last (the last good configuration stays in use). */
  readonly errors: string[];
  /** How many times a changed configuration was taken. */
  readonly reloads: number;
}

/**
 * Watches `file` (a file, or a directory whose `.yml`/`.yaml`/`.json` files are merged) by its
 * files' identity, size and modification time, checked on every `load()`: a rename over the
 * file, as Poseidon writes it, is seen at once.
 */
export function fileConfigSource(file: string, onReload?: (cfg: Json) => void): FileConfigSource {
  let signature = '';
  let current: Json = {};
  const errors: string[] = [];
  let reloads = 0;
  const files = (): string[] => {
    const st = statSync(file);
    if (!st.isDirectory()) return [file];
    return readdirSync(file).filter((n) => /\.(ya?ml|json)$/.test(n)).sort().map((n) => path.join(file, n));
  };
  const src: FileConfigSource = {
    errors,
    get reloads() {
      return reloads;
    },
    async load() {
      let list: string[];
      try {
        list = files();
      } catch (err) {
        if (errors.at(-1) !== (err as Error).message) errors.push((err as Error).message);
        return current;
      }
      const sig = list.map((f) => {
        try {
          const s = statSync(f, { bigint: true });
          return `${f}:${s.ino}:${s.size}:${s.mtimeNs}`;
        } catch {
          return `${f}:gone`;
        }
      }).join('|');
      if (sig === signature) return current;
      signature = sig;
      const docs: [string, Json][] = [];
      for (const f of list) {
        try {
          const doc = parseDynamicConfig(readFileSync(f, 'utf8'));
          if (Object.keys(doc).length > 0) docs.push([f, doc]);
        } catch (err) {
          errors.push(`${f}: ${(err as Error).message}`);
        }
      }
      // Traefik ignores an empty configuration and keeps the routes it has.
      if (docs.length === 0) {
        errors.push(`${file}: empty configuration ignored, keeping the last one`);
        return current;
      }
      current = docs.length === 1 ? docs[0]![1] : merge(docs, errors);
      reloads++;
      onReload?.(current);
      return current;
    },
  };
  return src;
}
