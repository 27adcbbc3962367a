/**
 * GET /models: per target, the active version and the registry's newest versions, each with its metrics, the
 * record of the training run that made it and a link to that run's report when training left them
 * (src/model/registry.ts). Kept a few seconds per container: versions change at promotion, not per request.
 */

import { readCoreConfig } from '../config.js';
import { activeVersion, findVersionFile, listVersions, parseModelUri } from '../model/registry.js';
import { TARGETS, type Target } from '../model/types.js';
import { DependencyError, NotFoundError } from './errors.js';
import type { ModelsView } from './schemas.js';

type Env = Record<string, string | undefined>;

const VERSIONS_PER_TARGET = 10;
export const RUN_RECORD = 'run.json';
export const RUN_REPORT = 'report.html';

function parseJson(bytes: Uint8Array | undefined): Record<string, unknown> | null {
  if (!bytes) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null; // a record that does not parse is shown as missing, not a failed page
  }
}

export async function listModels(env: Env = process.env): Promise<ModelsView> {
  if (parseModelUri(readCoreConfig(env).modelUri).kind === 'file') return { targets: [] };
  try {
    const targets = await Promise.all(
      TARGETS.map(async (target) => {
        const [active, versions] = await Promise.all([
          activeVersion(target, env),
          listVersions(target, VERSIONS_PER_TARGET, env),
        ]);
        const views = await Promise.all(
          versions.map(async ({ version, publishedAt }) => {
            const [metrics, run, report] = await Promise.all([
              findVersionFile(target, version, 'metrics.json', env),
              findVersionFile(target, version, RUN_RECORD, env),
              findVersionFile(target, version, RUN_REPORT, env),
            ]);
            return {
              version,
              publishedAt,
              active: version === active,
              metrics: parseJson(metrics),
              run: parseJson(run),
              report: report
                ? `/models/report?target=${target}&version=${encodeURIComponent(version)}`
                : null,
            };
          }),
        );
        return { target, active: active ?? null, versions: views };
      }),
    );
    return { targets };
  } catch (cause) {
    throw new DependencyError('model registry is unavailable, retry later', { cause });
  }
}

/** A run's HTML report; NotFoundError when that version has none. */
export async function runReport(target: Target, version: string, env: Env = process.env): Promise<string> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await findVersionFile(target, version, RUN_REPORT, env);
  } catch (cause) {
    throw new DependencyError('model registry is unavailable, retry later', { cause });
  }
  if (!bytes) throw new NotFoundError(`no report for ${target}/${version}`);
  return new TextDecoder().decode(bytes);
}
