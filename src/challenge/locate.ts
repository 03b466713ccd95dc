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

/** A mapping key that repeats an earlier key of the same mapping (as JS sees keys: `1` = `"1"`). */
export interface DuplicateKey {
  path: string[];
  offset: number;
}

/**
 * Every repeated mapping key in the document, in source order. Linear (yaml's own `uniqueKeys`
 * check is quadratic in the number of keys, seconds for a 256 KiB file). Does not follow aliases.
 */
export function findDuplicateKeys(doc: Document): DuplicateKey[] {
  const found: DuplicateKey[] = [];
  const walk = (node: unknown, path: string[]): void => {
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = keyText(pair);
        if (seen.has(key)) found.push({ path: [...path, key], offset: rangeStart(pair.key) ?? 0 });
        seen.add(key);
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, String(i)]));
    }
  };
  walk(doc.contents, []);
  return found;
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
