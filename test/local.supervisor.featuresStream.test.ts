/**
 * `FEATURES_STREAM=x npm start`: the supervisor provisions the optional features stream when the components are
 * told to publish to it (real emulators, no component processes).
 */
import { ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import { STREAM } from '../src/resources.js';
import { withSystem } from './support/system.js';

const fixture = withSystem({ components: [], seed: false, env: { FEATURES_STREAM: 'qw-test-features' } });

describe('supervisor with FEATURES_STREAM', () => {
  it('creates the features stream next to the market stream', async () => {
    const kinesis = kinesisClient(fixture.system.env);
    const names = (await kinesis.send(new ListStreamsCommand({}))).StreamNames ?? [];
    expect(names.sort()).toEqual([STREAM.localName, 'qw-test-features'].sort());
  });
});
