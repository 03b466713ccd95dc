/**
 * Durations (`30s`, `10m`, `2h` or integer seconds) and sizes (`64m`: k, m, g as powers of 1024)
 * as written in challenge files, and the bounds each field accepts.
 */

const SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600 };
const KIB = 1024;
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const BYTES: Record<string, number> = { k: KIB, m: MIB, g: GIB };

/** Inclusive bounds of a field, in seconds or bytes. */
export interface Bounds {
  min: number;
  max: number;
}

/** `ttl.default` and `ttl.max`: 10 seconds to 7 days. */
export const TTL_BOUNDS: Bounds = { min: 10, max: 7 * 24 * 3600 };
/** `healthcheck.timeout`: 1 second to 1 hour. */
export const TIMEOUT_BOUNDS: Bounds = { min: 1, max: 3600 };
/** `resources.memory`: 4 MiB to 64 GiB. */
export const MEMORY_BOUNDS: Bounds = { min: 4 * MIB, max: 64 * GIB };
/** `filesystem.tmpfs`: 1 MiB to 64 GiB. */
export const TMPFS_BOUNDS: Bounds = { min: MIB, max: 64 * GIB };
/** Writable-layer limit (`filesystem.size`): at least 16 MiB, at most 1 TiB. */
export const DISK_BOUNDS: Bounds = { min: 16 * MIB, max: 1024 * GIB };

/**
 * Seconds of a duration: a non-negative integer, or a string `<n>s|m|h`. Returns undefined for
 * anything else (the schema reports those).
 */
export function durationSeconds(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  return scaled(value, /^([0-9]+)(s|m|h)$/, SECONDS);
}

/** Bytes of a size string `<n>k|m|g`; undefined when the string has another shape. */
export function sizeBytes(value: unknown): number | undefined {
  return scaled(value, /^([0-9]+)(k|m|g)$/, BYTES);
}

function scaled(value: unknown, shape: RegExp, units: Record<string, number>): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = shape.exec(value);
  const unit = m?.[2] === undefined ? undefined : units[m[2]];
  if (m?.[1] === undefined || unit === undefined) return undefined;
  return Number(m[1]) * unit;
}

/** The shortest exact form of a number of seconds: `2h`, `90m`, `45s`. */
export function formatDuration(seconds: number): string {
  if (seconds > 0 && seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds > 0 && seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** The shortest exact form of a number of bytes: `64g`, `16m`, `512k` (bytes otherwise). */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [['g', GIB], ['m', MIB], ['k', KIB]] as const) {
    if (bytes > 0 && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes} bytes`;
}
