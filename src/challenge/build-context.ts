/**
 * Filesystem checks of a `build` section: the context must be an existing directory whose real
 * path (symlinks resolved) lies inside the challenges root, holding the Dockerfile inside itself.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { BuildSpec } from '../core/challenge.ts';
import type { RawIssue } from './issue.ts';
import type { RawChallenge } from './normalize.ts';

/**
 * Checks `build` (from `normalizeSpec`) against the filesystem; `written` is the YAML value, used
 * to pick issue paths and to quote the author's own words. Resolves to [] when the build is usable.
 */
export async function checkBuildContext(build: BuildSpec, written: NonNullable<RawChallenge['build']>, root: string): Promise<RawIssue[]> {
  const contextPath = typeof written === 'string' ? ['build'] : ['build', 'context'];
  const dockerfilePath = typeof written === 'string' || written.dockerfile === undefined ? contextPath : ['build', 'dockerfile'];
  const shown = typeof written === 'string' ? written : written.context;
  const realRoot = await real(root);
  if (typeof realRoot !== 'string') return [{ path: contextPath, message: `cannot resolve the challenges directory ${root} (${realRoot.code})` }];
  const realContext = await real(build.context);
  if (typeof realContext !== 'string') {
    return [{ path: contextPath, message: `build context "${shown}" does not exist (${build.context}: ${realContext.code})` }];
  }
  if (!isInside(realRoot, realContext)) {
    return [{ path: contextPath, message: `build context "${shown}" resolves to ${realContext}, outside the challenges directory ${realRoot}` }];
  }
  if (!(await stat(realContext)).isDirectory()) {
    return [{ path: contextPath, message: `build context "${shown}" (${realContext}) is not a directory` }];
  }
  return checkDockerfile(realContext, build.dockerfile, dockerfilePath);
}

/** True when `value` has the shape of a `build` value (a path, or a mapping with a string context). */
export function isBuildValue(value: unknown): value is NonNullable<RawChallenge['build']> {
  if (typeof value === 'string') return value !== '';
  if (value === null || typeof value !== 'object') return false;
  const { context, dockerfile } = value as Record<string, unknown>;
  return typeof context === 'string' && context !== '' && (dockerfile === undefined || (typeof dockerfile === 'string' && dockerfile !== ''));
}

async function checkDockerfile(realContext: string, dockerfile: string, issuePath: string[]): Promise<RawIssue[]> {
  const wanted = path.resolve(realContext, dockerfile);
  const realFile = await real(wanted);
  if (typeof realFile !== 'string') {
    return [{ path: issuePath, message: `dockerfile "${dockerfile}" not found in the build context (${wanted}: ${realFile.code})` }];
  }
  if (!isInside(realContext, realFile) || realFile === realContext) {
    return [{ path: issuePath, message: `dockerfile "${dockerfile}" resolves to ${realFile}, outside the build context ${realContext}` }];
  }
  if (!(await stat(realFile)).isFile()) {
    return [{ path: issuePath, message: `dockerfile "${dockerfile}" (${realFile}) is not a regular file` }];
  }
  return [];
}

async function real(p: string): Promise<string | { code: string }> {
  try {
    return await realpath(p);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return { code: typeof code === 'string' ? code : String(err) };
  }
}

/** True when `child` is `parent` or below it (both absolute, already real paths). */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
