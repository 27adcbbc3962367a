/**
 * CDK app: one environment-agnostic stack (no lookups), checked by cdk-nag's AWS Solutions rules. The deployment's
 * choices come from CDK context (`-c key=value`, README "Deploying"), read by readDeploymentContext in
 * src/config.ts, the reader `quotewatch cost` prices.
 */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { QuoteWatchStack } from '../lib/quotewatch-stack.js';
import { InvalidPropError } from '../lib/validate.js';

const app = new App();
try {
  new QuoteWatchStack(app, 'QuoteWatch', {
    description: 'QuoteWatch: real-time market-microstructure ML for Coinbase',
    buildSha: process.env.BUILD_SHA,
    alarmEmails: process.env.ALARM_EMAIL ? [process.env.ALARM_EMAIL] : undefined,
  });
} catch (err) {
  // A bad context value or prop: one line naming it, not a stack trace.
  if (!(err instanceof InvalidPropError)) throw err;
  console.error(`synth failed: ${err.message}`);
  process.exit(1);
}
// cdk-nag v3 is a policy-validation plugin (v2's Aspect API is gone): findings fail the synth.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
