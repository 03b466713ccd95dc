import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** What a flag is derived from; none of these may contain ':' ambiguously (ids are validated). */
export interface FlagSubject {
  team: string;
  challenge: string;
  instance: string;
}

/**
 * The per-team flag: `format` with its `%s` replaced by the first 32 hex chars of
 * HMAC-SHA256(secret, "v1:<team>:<challenge>:<instance>"). Pure and deterministic, so a flag
 * stays verifiable after its instance is gone. The secret never leaves this process.
 */
export function deriveFlag(secret: string, subject: FlagSubject, format: string): string {
  const mac = createHmac('sha256', secret)
    .update(`v1:${subject.team}:${subject.challenge}:${subject.instance}`)
    .digest('hex')
    .slice(0, 32);
  return format.replace('%s', mac);
}

/** Constant-time comparison of a submitted flag against the expected one. */
export function flagMatches(expected: string, submitted: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(submitted);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** SHA-256 hex of a flag: what is stored to recognise it later (never the flag itself). */
export function flagDigest(flag: string): string {
  return createHash('sha256').update(flag).digest('hex');
}
