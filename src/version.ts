import { readFileSync } from 'node:fs';

/** This build's version, from package.json (shown by `GET /v1/version` and worker records). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
