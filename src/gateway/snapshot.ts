/**
 * The last rendered Traefik configuration, for the HTTP provider endpoint: the gateway
 * reconciler hands over every file it renders, so the endpoint serves exactly the file's JSON
 * body (the same bytes, without the comment header), with a strong ETag so Traefik's polling
 * costs a 304 when nothing changed.
 */
import { createHash } from 'node:crypto';
import { traefikJsonOf } from './traefik.ts';

export interface RenderedJson {
  json: string;
  etag: string;
}

/** Holder of the last configuration as JSON text; hashes only when it changed. */
export class GatewaySnapshot {
  #current: RenderedJson | undefined;

  /** Records the configuration from a file's text as written by `serializeTraefikConfig`. */
  set(fileText: string): void {
    const json = traefikJsonOf(fileText);
    if (json === this.#current?.json) return;
    this.#current = { json, etag: `"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"` };
  }

  /** The last configuration, or undefined before the first gateway pass. */
  get(): RenderedJson | undefined {
    return this.#current;
  }
}
