/**
 * The containers' health check: `node dist/healthcheck.mjs <ingestor|worker>` (ECS runs it in the task, see
 * lib/fargate-services.ts HEALTH_CHECK). Exit 0 while the component's liveness file is fresh and its loop
 * progressed recently (src/health/liveness.ts), 1 otherwise, with the reason on stderr (ECS keeps the output).
 */
import { LIVENESS_COMPONENTS, orExit, readLivenessConfig } from '../src/config.js';
import { checkLiveness } from '../src/health/liveness.js';

const component = process.argv[2];
if (!LIVENESS_COMPONENTS.some((c) => c === component)) {
  console.error(`usage: healthcheck <${LIVENESS_COMPONENTS.join('|')}>`);
  process.exit(2);
}
const config = orExit(() => readLivenessConfig(component as (typeof LIVENESS_COMPONENTS)[number]));
const verdict = await checkLiveness(config);
(verdict.ok ? console.log : console.error)(
  `${component}: ${verdict.ok ? 'healthy' : 'unhealthy'}: ${verdict.reason}`,
);
process.exit(verdict.ok ? 0 : 1);
