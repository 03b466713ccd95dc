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

/**
 * Holder of the last configuration as JSON text. The ETag is computed when the endpoint is first
 * asked for this version, not on every render: hashing 5 MB costs ~10 ms, and with no Traefik
 * polling the endpoint it would be paid by every gateway pass for nothing.
 */
export class GatewaySnapshot {
  #json: string | undefined;
  /** The ETag of `#json`, once asked for. */
  #etag: string | undefined;

  /** Records the configuration from a file's text as written by `serializeTraefikConfig`. */
  set(fileText: string): void {
    const json = traefikJsonOf(fileText);
    if (json === this.#json) return;
    this.#json = json;
    this.#etag = undefined;
  }

  /** The last configuration, or undefined before the first gateway pass. */
  get(): RenderedJson | undefined {
    const json = this.#json;
    if (json === undefined) return undefined;
    this.#etag ??= `"${createHash('sha256').update(json).digest('base64url').slice(0, 27)}"`;
    return { json, etag: this.#etag };
  }
}
