/**
 * The challenge JSON Schema (`schemas/challenge.schema.json`), compiled once at import. It checks
 * shape only: types, patterns, enums, counts, unknown keys. Bounds of durations and sizes and the
 * cross-field rules live in `rules.ts`.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { ajvErrorsToIssues } from './ajv-issues.ts';
import type { RawIssue } from './issue.ts';
import { packageFile } from '../package-files.ts';

/** The parsed schema document (read-only by convention; exported for tests and docs). */
export const challengeSchema: Record<string, unknown> = JSON.parse(
  readFileSync(packageFile('schemas/challenge.schema.json'), 'utf8'),
) as Record<string, unknown>;

const validate = new Ajv({ allErrors: true, strict: true }).compile(challengeSchema);

/** Checks a plain document value against the schema; [] means the shape is valid. */
export function checkShape(data: unknown): RawIssue[] {
  if (validate(data)) return [];
  return ajvErrorsToIssues(validate.errors ?? [], data, challengeSchema);
}
