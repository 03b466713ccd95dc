/** `16g`, `512m`, `1024k` or plain bytes -> bytes (the schema checks the text). */
export function parseSize(text: string): number {
  const m = /^([0-9]+)([kmgKMG]?)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * unit;
}
