/**
 * The last rendered Traefik configuration, for the HTTP provider endpoint: the gateway
 * reconciler sets it on every pass, so the endpoint serves exactly what the file holds (in
 * JSON), with a strong ETag so Traefik's polling costs a 304 when nothing changed.
 */
import { createHash } from 'node:crypto';
import type { TraefikDynamicConfig } from './traefik.ts';

export interface RenderedJson {
  json: string;
  etag: string;
}

/** Holder of the last configuration as JSON text; re-serialises only when it changed. */
export class GatewaySnapshot {
  #current: RenderedJson | undefined;

  /** Records `cfg` (deterministic JSON; the renderer already sorts every name). */
  set(cfg: TraefikDynamicConfig): void {
    const json = JSON.stringify(cfg);
    if (json === this.#current?.json) return;
    this.#current = { json, etag: `"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"` };
  }

  /** The last configuration, or undefined before the first gateway pass. */
  get(): RenderedJson | undefined {
    return this.#current;
  }
}
