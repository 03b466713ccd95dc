/**
 * Bytes -> one YAML document -> a plain JS value, with every way a file can be unusable turned
 * into a `SpecIssue` (size, encoding, syntax, duplicate keys, alias bombs, several documents, a
 * document that is not a mapping). Nothing here throws for bad input.
 */
import { open } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isMap, isSeq, LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { SpecIssue } from '../core/challenge.ts';
import { findDuplicateKeys, positionOf } from './locate.ts';

/** Largest challenge file accepted, checked before reading. */
export const MAX_FILE_BYTES = 256 * 1024;
/** yaml's alias expansion budget; far above what a hand-written spec uses, far below a bomb. */
export const MAX_ALIAS_COUNT = 50;

/** A parsed challenge document: the AST (for positions) and its plain value (for validation). */
export type ParsedDocument =
  | { ok: true; doc: Document; lineCounter: LineCounter; data: Record<string, unknown> }
  | { ok: false; issues: SpecIssue[] };

/**
 * Reads a regular file of at most `MAX_FILE_BYTES` as strict UTF-8. `file` is the display name
 * used in issues, `absPath` the path opened. Opens non-blocking so a FIFO cannot hang the load.
 */
export async function readSource(file: string, absPath: string): Promise<{ ok: true; text: string } | { ok: false; issues: SpecIssue[] }> {
  const fail = (message: string) => ({ ok: false as const, issues: [{ file, line: 0, column: 0, path: '', message }] });
  let handle;
  try {
    handle = await open(absPath, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return fail(`cannot read file: ${errorCode(err)}`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return fail('not a regular file');
    if (stat.size > MAX_FILE_BYTES) return fail(tooLarge(stat.size));
    // Read at most one byte past the limit: the file may have grown since fstat.
    const buffer = Buffer.alloc(MAX_FILE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > MAX_FILE_BYTES) return fail(tooLarge(length));
    const text = decodeUtf8(buffer.subarray(0, length));
    return text === undefined ? fail('file is not valid UTF-8 text') : { ok: true, text };
  } catch (err) {
    return fail(`cannot read file: ${errorCode(err)}`);
  } finally {
    await handle.close();
  }
}

/** Strict UTF-8 (a leading BOM is dropped); undefined for invalid byte sequences. */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function tooLarge(size: number): string {
  return `file is ${size} bytes; the limit is ${MAX_FILE_BYTES} bytes (256 KiB)`;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(err);
}

/** Parses `text` as exactly one YAML document whose root is a mapping. */
export function parseDocument(file: string, text: string): ParsedDocument {
  const lineCounter = new LineCounter();
  const at = (offset: number, message: string): SpecIssue => ({ file, ...positionOf(lineCounter, offset), path: '', message });
  let docs;
  try {
    docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: false, logLevel: 'error' });
  } catch (err) {
    return { ok: false, issues: [at(0, `YAML could not be parsed: ${String(err)}`)] };
  }
  const doc = docs[0];
  if (doc === undefined) return { ok: false, issues: [at(0, 'file is empty; expected a mapping with id, name, ...')] };
  const issues = doc.errors.map((e) => at(e.pos[0], `YAML syntax error: ${e.message}`));
  for (const dup of findDuplicateKeys(doc)) {
    issues.push({ ...at(dup.offset, `duplicate key "${dup.path.at(-1) ?? ''}"`), path: dup.path.join('.') });
  }
  const second = docs[1];
  if (second !== undefined) issues.push(at(second.range[0], 'a challenge file holds exactly one YAML document; found several'));
  if (issues.length > 0) return { ok: false, issues };
  if (!isMap(doc.contents)) {
    const offset = doc.contents?.range?.[0] ?? 0;
    return { ok: false, issues: [at(offset, `the document must be a mapping (id: ..., name: ...), got ${kindOf(doc.contents)}`)] };
  }
  return toPlain(doc, lineCounter, at);
}

function toPlain(doc: Document, lineCounter: LineCounter, at: (offset: number, message: string) => SpecIssue): ParsedDocument {
  const start = doc.contents?.range?.[0] ?? 0;
  try {
    const data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as Record<string, unknown>;
    return { ok: true, doc, lineCounter, data };
  } catch (err) {
    if (err instanceof RangeError) return { ok: false, issues: [at(start, 'the document is nested too deeply')] };
    if (err instanceof ReferenceError && /excessive alias/i.test(err.message)) {
      return { ok: false, issues: [at(start, `too many alias expansions (limit ${MAX_ALIAS_COUNT}); write the values out`)] };
    }
    return { ok: false, issues: [at(start, `YAML error: ${err instanceof Error ? err.message : String(err)}`)] };
  }
}

function kindOf(node: unknown): string {
  if (node === null || node === undefined) return 'nothing';
  if (isSeq(node)) return 'a list';
  return 'a single value';
}
