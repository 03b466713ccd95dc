/**
 * Issues before and after they are placed in a file. Checks produce `RawIssue`s that name a path
 * in the document; `locate.ts` turns them into `SpecIssue`s with a line and column.
 */
import type { SpecIssue } from '../core/challenge.ts';

/**
 * A problem at a document path (`['expose', 0, 'port']`). `anchor: 'parent'` places it at the
 * mapping that contains the path (used for missing keys); otherwise at the entry itself (the key
 * of a mapping entry, or the list item).
 */
export interface RawIssue {
  path: ReadonlyArray<string | number>;
  message: string;
  anchor?: 'parent';
}

/** The dotted form of a document path: `expose.0.port`; '' for the document itself. */
export function dottedPath(path: ReadonlyArray<string | number>): string {
  return path.join('.');
}

/**
 * One human line: `file:line:col path: message`. The path part is left out when empty, and the
 * position when unknown (line 0: the file as a whole, e.g. too large or unreadable).
 */
export function formatIssue(issue: SpecIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : `${issue.file}:`;
  return issue.path === '' ? `${where} ${issue.message}` : `${where} ${issue.path}: ${issue.message}`;
}

/** Orders issues by position, then path, so output is stable. Returns a new array. */
export function sortIssues(issues: readonly SpecIssue[]): SpecIssue[] {
  return [...issues].sort(
    (a, b) => a.line - b.line || a.column - b.column || a.path.localeCompare(b.path),
  );
}
