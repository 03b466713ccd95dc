/**
 * A `ContainerRuntime` decorator that times every engine call by operation (the method name) and
 * counts the ones that reject, under an `engine` label (the worker id, or `builder` for the
 * manager's build engine). Builds, pushes and pulls are also recorded as image operations, and a
 * full network listing updates the engine's network count (each network holds a subnet of
 * Docker's address pools). Behaviour is unchanged: results and errors pass through as they are.
 */
import type {
  ContainerPlan, ContainerRuntime, EngineEvent, EngineInfo, ImageFacts, NetworkPlan, ObservedContainer, ObservedNetwork,
} from '../core/runtime.ts';
import type { Metrics } from './metrics.ts';

type ImageOperation = 'build' | 'push' | 'pull';

/** See the module comment. */
export class MeteredRuntime implements ContainerRuntime {
  constructor(private readonly inner: ContainerRuntime, private readonly metrics: Metrics, private readonly engine: string) {}

  async #timed<T>(operation: string, call: () => Promise<T>, image?: ImageOperation): Promise<T> {
    const started = performance.now();
    const labels = { engine: this.engine, operation };
    const done = (failed: boolean): void => {
      const seconds = (performance.now() - started) / 1000;
      this.metrics.dockerDuration.observe(labels, seconds);
      if (failed) this.metrics.dockerErrors.inc(labels);
      if (!image) return;
      const imageLabels = { engine: this.engine, operation: image };
      this.metrics.imageDuration.observe(imageLabels, seconds);
      if (failed) this.metrics.imageFailures.inc(imageLabels);
    };
    try {
      const result = await call();
      done(false);
      return result;
    } catch (err) {
      done(true);
      throw err;
    }
  }

  listContainers(instance?: string): Promise<ObservedContainer[]> {
    return this.#timed('listContainers', () => this.inner.listContainers(instance));
  }

  async listNetworks(instance?: string): Promise<ObservedNetwork[]> {
    const networks = await this.#timed('listNetworks', () => this.inner.listNetworks(instance));
    if (instance === undefined) this.metrics.engineNetworks.set({ engine: this.engine }, networks.length);
    return networks;
  }

  ensureNetwork(plan: NetworkPlan): Promise<string> {
    return this.#timed('ensureNetwork', () => this.inner.ensureNetwork(plan));
  }

  createPoolNetwork(name: string, bridge: string): Promise<string> {
    return this.#timed('createPoolNetwork', () => this.inner.createPoolNetwork(name, bridge));
  }

  removePoolNetwork(name: string): Promise<void> {
    return this.#timed('removePoolNetwork', () => this.inner.removePoolNetwork(name));
  }

  listPoolNetworks(): Promise<ObservedNetwork[]> {
    return this.#timed('listPoolNetworks', () => this.inner.listPoolNetworks());
  }

  createContainer(plan: ContainerPlan): Promise<ObservedContainer> {
    return this.#timed('createContainer', () => this.inner.createContainer(plan));
  }

  startContainer(id: string): Promise<void> {
    return this.#timed('startContainer', () => this.inner.startContainer(id));
  }

  removeContainer(id: string): Promise<void> {
    return this.#timed('removeContainer', () => this.inner.removeContainer(id));
  }

  removeNetwork(id: string): Promise<void> {
    return this.#timed('removeNetwork', () => this.inner.removeNetwork(id));
  }

  networksOf(container: string): Promise<string[]> {
    return this.#timed('networksOf', () => this.inner.networksOf(container));
  }

  connect(network: string, container: string): Promise<void> {
    return this.#timed('connect', () => this.inner.connect(network, container));
  }

  imageExists(ref: string): Promise<boolean> {
    return this.#timed('imageExists', () => this.inner.imageExists(ref));
  }

  imageFacts(ref: string): Promise<ImageFacts> {
    return this.#timed('imageFacts', () => this.inner.imageFacts(ref));
  }

  pullImage(ref: string): Promise<void> {
    return this.#timed('pullImage', () => this.inner.pullImage(ref), 'pull');
  }

  buildImage(context: string, dockerfile: string, tag: string, labels: Record<string, string>, opts?: { network?: boolean }): Promise<void> {
    return this.#timed('buildImage', () => this.inner.buildImage(context, dockerfile, tag, labels, opts), 'build');
  }

  pushImage(ref: string, target: string): Promise<void> {
    return this.#timed('pushImage', () => this.inner.pushImage(ref, target), 'push');
  }

  info(): Promise<EngineInfo> {
    return this.#timed('info', () => this.inner.info());
  }

  ping(): Promise<void> {
    return this.#timed('ping', () => this.inner.ping());
  }

  exec(container: string, cmd: string[], timeoutMs: number): Promise<number | undefined> {
    return this.#timed('exec', () => this.inner.exec(container, cmd, timeoutMs));
  }

  /** A stream, not a call: passed through untimed. */
  watchEvents(onEvent: (ev: EngineEvent) => void, signal: AbortSignal): void {
    this.inner.watchEvents(onEvent, signal);
  }
}
