/**
 * A worker host's ingress configuration: the routes of the instances running on this worker,
 * written for the Traefik on this host (file provider), which the edge sends each hostname to.
 * See `renderIngressConfig` for what the ingress requires of every request.
 */
import { wantsRunning, type Instance } from '../core/instance.ts';
import type { Logger } from '../core/reconcile.ts';
import { TraefikFileWriter } from '../gateway/file-writer.ts';
import { renderIngressConfig, serializeTraefikConfig, type IngressRoute } from '../gateway/traefik.ts';

export interface IngressWriterOptions {
  dir: string;
  /** The secret the edge adds (read at each render: the manager may replace it). */
  edgeSecret: () => Promise<string>;
  /** Addresses the edge connects from (see `IngressOptions.edgeSources`). */
  edgeSources?: readonly string[];
  log: Logger;
  httpEntryPoint?: string;
  tlsEntryPoint?: string;
}

/** The ingress routes of running instances (every endpoint of each). */
export function ingressRoutes(instances: readonly Instance[], now: number): IngressRoute[] {
  return instances
    .filter((i) => i.status === 'running' && wantsRunning(i, now))
    .flatMap((i) => i.endpoints.map((e) => ({ instance: i.id, name: e.name, protocol: e.protocol, hostname: e.hostname, backend: e.backend })));
}

/** Renders and writes the ingress file (only when it changed). */
export class IngressWriter {
  readonly #writer: TraefikFileWriter;
  readonly #opts: IngressWriterOptions;
  #warned = false;

  constructor(opts: IngressWriterOptions) {
    this.#opts = opts;
    this.#writer = new TraefikFileWriter(opts.dir, 'poseidon-ingress.yml');
  }

  /** The file's text for `instances` (those placed here). */
  async render(instances: readonly Instance[], now = Date.now()): Promise<string> {
    return serializeTraefikConfig(renderIngressConfig(ingressRoutes(instances, now), {
      edgeSecret: await this.#opts.edgeSecret(), ...(this.#opts.edgeSources?.length ? { edgeSources: this.#opts.edgeSources } : {}), httpEntryPoint: this.#opts.httpEntryPoint ?? 'web', tlsEntryPoint: this.#opts.tlsEntryPoint ?? 'websecure',
    }));
  }

  async write(instances: readonly Instance[]): Promise<void> {
    if (!this.#opts.edgeSources?.length && !this.#warned && instances.some((i) => i.endpoints.some((e) => e.protocol === 'tcp'))) {
      this.#warned = true;
      this.#opts.log.warn({}, 'POSEIDON_EDGE_SOURCES is not set: TCP routes of this ingress admit any client that reaches its TLS port; set it to the edge\'s addresses or firewall the port');
    }
    const wrote = await this.#writer.write(await this.render(instances));
    if (wrote) this.#opts.log.info({ routes: ingressRoutes(instances, Date.now()).length }, 'ingress configuration written');
  }
}
