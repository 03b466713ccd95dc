/**
 * Source port: where challenge definitions come from. Adapters: `source/git-source.ts` (a
 * watched git repository) and `source/dir-source.ts` (a local directory, for authors). A source
 * hands out immutable snapshots; the catalog loads and applies them.
 */

/** One readable state of the source. */
export interface Snapshot {
  /** Commit SHA for git; a content fingerprint (`dir-…`) for a directory. */
  revision: string;
  /** Absolute directory that issue file names are relative to (the repository root). */
  root: string;
  /** The challenges directory relative to `root` (`.` for the root itself). */
  path: string;
}

/** What the source follows, safe to show (credentials never appear). */
export interface SourceInfo {
  kind: 'git' | 'dir';
  /** Repository URL with any credentials redacted (git). */
  url?: string;
  branch?: string;
  /** Sub-directory of the repository holding the challenges (git), or the directory (dir). */
  path: string;
}

export interface FetchOptions {
  /** The revision the catalog serves now; a new revision that does not descend from it is a rewrite. */
  since?: string;
  /** Accept a rewritten history (force-push) this once. */
  allowRewrite?: boolean;
}

export interface Source {
  readonly info: SourceInfo;
  /**
   * Brings the source up to date and returns a snapshot of its newest revision. Rejects with a
   * PoseidonError (`E_GIT_*`, kind transient) when the source cannot be read; the caller keeps
   * what it has. Calls are serialized by the caller.
   */
  fetch(opts?: FetchOptions): Promise<Snapshot>;
  /** Calls `onChange` (debounced) whenever the source may have changed; returns stop. Optional. */
  watch?(onChange: () => void): () => void;
  /** Frees snapshots other than these revisions (best effort). */
  retain(revisions: readonly string[]): Promise<void>;
}
