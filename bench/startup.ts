/**
 * startup.first_prediction_s: seconds from launching `npm start`'s command (fresh data folder, default ports)
 * to the first /latest answer that carries a prediction.
 */
import { type BenchGroup, machineContext } from './harness.js';
import { startSystem } from './system.js';

export const startupGroup: BenchGroup = {
  name: 'startup',
  description: '`npm start` (fresh data folder) to the first prediction served by /latest',
  async run() {
    const system = startSystem('qw-bench-startup-');
    try {
      const product = await system.firstPrediction();
      const seconds = (Date.now() - system.startedAt) / 1000;
      return [
        {
          name: 'startup.first_prediction_s',
          value: seconds,
          unit: 's',
          context: {
            ...machineContext(),
            product,
            command: 'npm start (bin/quotewatch.ts start), fresh QW_DATA_DIR',
          },
        },
      ];
    } finally {
      await system.stop();
    }
  },
};
