/** CDK app: one environment-agnostic stack (no lookups), checked by cdk-nag's AWS Solutions rules. */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { QuoteWatchStack } from '../lib/quotewatch-stack.js';

const app = new App();
new QuoteWatchStack(app, 'QuoteWatch', {
  description: 'QuoteWatch: real-time market-microstructure ML for Coinbase',
  buildSha: process.env.BUILD_SHA,
  alarmEmails: process.env.ALARM_EMAIL ? [process.env.ALARM_EMAIL] : undefined,
});
// cdk-nag v3 is a policy-validation plugin (v2's Aspect API is gone): findings fail the synth.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
