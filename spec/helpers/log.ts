import type { Logger } from '../../src/core/reconcile.ts';

/** A logger that keeps lines for assertions (and prints nothing). */
export function memoryLogger(): Logger & { lines: { level: string; obj: object; msg: string }[] } {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const at = (level: string) => (obj: object, msg: string) => { lines.push({ level, obj, msg }); };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
