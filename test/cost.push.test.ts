/** Push per viewer (src/cost/model.ts pushViewerCostPerMonth) priced from the dated price file, beside polling. */
import { describe, expect, it } from 'vitest';
import { readDeploymentContext } from '../src/config.js';
import { pushViewerCostPerMonth, viewerCostPerMonth } from '../src/cost/model.js';
import { PRICES } from '../src/cost/prices.js';
import { costTable, formatCostTable } from '../src/cost/report.js';

const MONTH_S = PRICES.hoursPerMonth * 3600;

describe('push per viewer', () => {
  it('prices messages in 32 KB units and connection minutes at the WebSocket API list prices', () => {
    const push = pushViewerCostPerMonth(300);
    expect(push.messages).toBeCloseTo((MONTH_S * 1000) / 300, 0);
    expect(push.parts.messages).toBeCloseTo((push.messages / 1e6) * 1.0, 6);
    expect(push.parts.connectionMinutes).toBeCloseTo(((PRICES.hoursPerMonth * 60) / 1e6) * 0.25, 9);
    expect(push.usd).toBeCloseTo(
      Object.values(push.parts).reduce((s, v) => s + v, 0),
      9,
    );
  });

  it('scales with the cadence and the measured CPU per post', () => {
    const base = pushViewerCostPerMonth(300, { workerCpuUsPerPost: 100 });
    expect(pushViewerCostPerMonth(600, { workerCpuUsPerPost: 100 }).parts.messages).toBeCloseTo(
      base.parts.messages / 2,
      6,
    );
    expect(pushViewerCostPerMonth(300, { workerCpuUsPerPost: 200 }).parts.workerCpu).toBeCloseTo(
      base.parts.workerCpu * 2,
      9,
    );
  });

  it('costs no more than polling at the same cadence, and quotewatch cost says both', () => {
    const d = readDeploymentContext({});
    expect(pushViewerCostPerMonth().usd).toBeLessThan(viewerCostPerMonth(d).usd);
    const text = formatCostTable(costTable(d));
    expect(text).toMatch(/polls \/latest every 300 ms: 8\.8 M requests, \$\d+\.\d\d a month/);
    expect(text).toMatch(/By push at the same cadence: 8\.8 M WebSocket messages, \$\d+\.\d\d a month/);
  });
});
