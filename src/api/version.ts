/**
 * /version: what code and which models are serving.
 */
import pkg from '../../package.json' with { type: 'json' };
import { TARGETS, type Target } from '../model/types.js';
import { DependencyError } from './errors.js';
import type { VersionInfoView } from './schemas.js';

export type VersionInfo = VersionInfoView;

export const APP_VERSION: string = pkg.version;

export async function versionInfo(
  buildSha: string | undefined,
  activeVersion: (target: Target) => Promise<string | undefined>,
): Promise<VersionInfo> {
  const models = {} as Record<Target, string | null>;
  try {
    for (const t of TARGETS) models[t] = (await activeVersion(t)) ?? null;
  } catch (cause) {
    throw new DependencyError('model registry table is unavailable, retry later', { cause });
  }
  return { app: pkg.name, version: APP_VERSION, buildSha: buildSha ?? null, models };
}
