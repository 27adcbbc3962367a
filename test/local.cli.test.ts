import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoClient } from '../src/aws/clients.js';
import { DEFAULT_BASELINE_DIR } from '../src/local/provision.js';
import { TARGETS } from '../src/model/types.js';
import { REGISTRY_KEYS, TABLES } from '../src/resources.js';
import { withEmulators } from './support/system.js';

const cli = fileURLToPath(new URL('../bin/quotewatch.ts', import.meta.url));
const local = withEmulators();

async function quotewatch(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', cli, ...args],
      {
        env: { ...process.env, ...env },
      },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe('quotewatch CLI', () => {
  it('rejects an unknown command or option with exit code 2 and a hint', async () => {
    const command = await quotewatch(['frobnicate']);
    expect(command.code).toBe(2);
    expect(command.stderr).toContain('unknown command "frobnicate"');

    const option = await quotewatch(['start', '--bogus']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain('unknown option --bogus (usage: quotewatch start [--live])');

    const audit = await quotewatch(['audit', '/nonexistent/sim.ndjson']);
    expect(audit.code).toBe(2);
    expect(audit.stderr).toContain('SIM_LOG: no such file /nonexistent/sim.ndjson');
  });

  it('provision creates the resources at the AWS_ENDPOINT_URL_* it is given, then finds them there', async () => {
    const first = await quotewatch(['provision'], local.env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(`[provision] endpoints: ${local.env.AWS_ENDPOINT_URL_KINESIS}`);
    expect(first.stdout).toContain(`created table ${TABLES.latest.localName}`);

    const second = await quotewatch(['provision'], local.env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).not.toContain('created');
    expect(second.stdout).toContain('already there');

    // The shipped baseline models were seeded: each has an active version in the registry.
    const shipped = TARGETS.filter((target) => existsSync(join(DEFAULT_BASELINE_DIR, target)));
    expect(shipped.length).toBeGreaterThan(0);
    for (const target of shipped) {
      const { Item } = await dynamoClient(local.env).send(
        new GetCommand({ TableName: TABLES.registry.localName, Key: REGISTRY_KEYS.active(target) }),
      );
      expect(Item?.version, target).toEqual(expect.any(String));
      expect(first.stdout).toContain(`activated model ${target}/${Item?.version}`);
    }
  });

  it('train runs the training job at the same endpoints, and says clearly what is wrong', async () => {
    const step = await quotewatch(['train', 'fit']);
    expect(step.code).toBe(2);
    expect(step.stderr).toContain('expected one of train, evaluate, promote');

    const unset = await quotewatch(['train', 'train'], local.env);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('CANDIDATE_VERSION');

    // Provisioned by the test above, but the lake holds no features yet: the job fails and names why.
    const empty = await quotewatch(['train', 'train'], { ...local.env, CANDIDATE_VERSION: 'cli-v1' });
    expect(empty.code).toBe(1);
    expect(`${empty.stdout}${empty.stderr}`).toMatch(/train failed/);
  });
});
