/**
 * Version source port: how a worker learns the challenge version an instance runs. Versions are
 * addressed by their spec hash and never change, so a worker may cache them for good. Adapters:
 * the in-process catalog (embedded worker) and the catalog persisted in Redis (remote workers);
 * see `catalog/version-source.ts`.
 */
import type { ChallengeSpec } from './challenge.ts';

export interface VersionInfo {
  hash: string;
  spec: ChallengeSpec;
  /** Image reference workers run (with a registry: the pushed reference). */
  image: string;
  /** With a registry, built images are pullable only once published (pushed) by the manager. */
  published?: boolean;
  /** Why the manager could not build or push it. */
  publishError?: string;
}

export interface VersionSource {
  /** The version with this hash; undefined when it is not known (yet). Rejects when the source cannot be read. */
  version(hash: string): Promise<VersionInfo | undefined>;
  /** Current versions of the challenges that take launches (what workers prepare images for). */
  current(): Promise<VersionInfo[]>;
}
