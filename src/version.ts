import { readFileSync } from 'node:fs';
import { packageFile } from './package-files.ts';

/** This build's version, from package.json (shown by `GET /v1/version` and worker records). */
export const VERSION: string = (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version;
