/**
 * Finds where in the YAML source a document path lives, so every issue carries a line and
 * column. Walks the parsed AST (never the plain JS value), following aliases to their anchor.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Pair } from 'yaml';
import type { SpecIssue } from '../core/challenge.ts';
import { dottedPath, type RawIssue } from './issue.ts';

/** 1-based line and column. */
export interface Position {
  line: number;
  column: number;
}

/** The 1-based position of a 0-based source offset. */
export function positionOf(lineCounter: LineCounter, offset: number): Position {
  const { line, col } = lineCounter.linePos(offset);
  return { line, column: col };
}

/**
 * Places a raw issue in the source: at the key of a mapping entry (so `memory: 64x` points at
 * `memory`), at the item of a list, or, with `anchor: 'parent'`, at the containing mapping. When
 * the path does not exist in the AST it falls back to the deepest node that does.
 */
export function placeIssue(file: string, doc: Document, lineCounter: LineCounter, issue: RawIssue): SpecIssue {
  const offset = issue.anchor === 'parent'
    ? findOffset(doc, issue.path.slice(0, -1), 'node')
    : findOffset(doc, issue.path, 'entry');
  return { file, ...positionOf(lineCounter, offset), path: dottedPath(issue.path), message: issue.message };
}

/** `entry`: the key of the last mapping entry on the path; `node`: the value node itself. */
function findOffset(doc: Document, path: ReadonlyArray<string | number>, mode: 'entry' | 'node'): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [i, seg] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p) === String(seg));
      if (pair === undefined) return offset;
      const keyOffset = rangeStart(pair.key) ?? offset;
      if ((last && mode === 'entry') || pair.value === null || pair.value === undefined) return keyOffset;
      node = pair.value;
    } else if (isSeq(node)) {
      node = node.items[Number(seg)];
      if (node === undefined) return offset;
    } else {
      return offset;
    }
    offset = rangeStart(node) ?? offset;
  }
  return offset;
}

/**
 * The path of the mapping key that starts at `offset` (where yaml reports a duplicate key), or
 * undefined when no key starts there. Does not follow aliases.
 */
export function keyPathAt(doc: Document, offset: number): string[] | undefined {
  const search = (node: unknown, path: string[]): string[] | undefined => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const here = [...path, keyText(pair)];
        if (rangeStart(pair.key) === offset) return here;
        const found = search(pair.value, here);
        if (found !== undefined) return found;
      }
    } else if (isSeq(node)) {
      for (const [i, item] of node.items.entries()) {
        const found = search(item, [...path, String(i)]);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  };
  return search(doc.contents, []);
}

function keyText(pair: Pair<unknown, unknown>): string {
  const key = pair.key;
  if (isScalar(key)) return String(key.value);
  return String(key);
}

function rangeStart(node: unknown): number | undefined {
  if (node === null || typeof node !== 'object' || !('range' in node)) return undefined;
  const range = (node as { range?: readonly number[] | null }).range;
  return range?.[0];
}
