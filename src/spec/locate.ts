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
  const target = issue.anchor === 'parent' ? issue.path.slice(0, -1) : issue.path;
  const offset = findOffset(doc, target) ?? 0;
  return { file, ...positionOf(lineCounter, offset), path: dottedPath(issue.path), message: issue.message };
}

function findOffset(doc: Document, path: ReadonlyArray<string | number>): number | undefined {
  let node: unknown = doc.contents;
  let offset = rangeStart(node);
  for (const [i, seg] of path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p) === String(seg));
      if (pair === undefined) return offset;
      if (last || pair.value === null || pair.value === undefined) return rangeStart(pair.key) ?? offset;
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
