/** The push settings (src/config.ts): defaults as API Gateway's limits, and each bad value named. */
import { describe, expect, it } from 'vitest';
import {
  readDashboardPushUrl,
  readDeploymentContext,
  readJwtConfig,
  readPushConfig,
  readWebSocketApiConfig,
  readWebSocketGatewayConfig,
  WEBSOCKET_LIMITS,
} from '../src/config.js';

describe('push configuration', () => {
  it("defaults: API Gateway's limits, the publisher's pace, off without an endpoint", () => {
    expect(readWebSocketGatewayConfig({})).toEqual({ port: 3001, ...WEBSOCKET_LIMITS });
    expect(WEBSOCKET_LIMITS).toEqual({
      idleMs: 600_000,
      maxConnectionMs: 7_200_000,
      frameBytes: 32_768,
      messageBytes: 131_072,
      newConnectionsPerS: 500,
    });
    expect(readPushConfig({})).toEqual({
      endpoint: undefined,
      minIntervalMs: 250,
      concurrency: 64,
      refreshMs: 1000,
      timeoutMs: 3000,
    });
    expect(readWebSocketApiConfig({})).toEqual({
      maxConnections: 1000,
      maxConnectionsPerIp: 20,
      origins: [],
      maxProducts: 50,
    });
    expect(readDashboardPushUrl({})).toBeUndefined();
    expect(readDeploymentContext({}).push).toEqual({
      enabled: true,
      maxConnections: 1000,
      maxConnectionsPerIp: 20,
    });
  });

  it('reads what is set', () => {
    expect(readPushConfig({ PUSH_ENDPOINT: 'http://127.0.0.1:3001', PUSH_MIN_MS: '100' })).toMatchObject({
      endpoint: 'http://127.0.0.1:3001',
      minIntervalMs: 100,
    });
    expect(readWebSocketGatewayConfig({ WS_IDLE_MS: '300', WS_MAX_FRAME_BYTES: '1024' })).toMatchObject({
      idleMs: 300,
      frameBytes: 1024,
    });
    expect(readWebSocketApiConfig({ WS_ORIGINS: 'http://127.0.0.1:3000,https://d.example' }).origins).toEqual(
      ['http://127.0.0.1:3000', 'https://d.example'],
    );
    expect(readJwtConfig({ JWT_ISSUER: 'https://i.example', JWT_AUDIENCE: 'a, b' })).toEqual({
      issuer: 'https://i.example',
      audience: ['a', 'b'],
    });
  });

  it.each([
    [() => readPushConfig({ PUSH_ENDPOINT: 'wss://x' }), /PUSH_ENDPOINT: invalid value "wss:\/\/x"/],
    [() => readPushConfig({ PUSH_CONCURRENCY: '0' }), /PUSH_CONCURRENCY: invalid value "0" \(must be >= 1\)/],
    [() => readPushConfig({ PUSH_MIN_MS: 'soon' }), /PUSH_MIN_MS: invalid value "soon"/],
    [() => readWebSocketGatewayConfig({ WS_PORT: '70000' }), /WS_PORT: invalid value "70000"/],
    [() => readWebSocketGatewayConfig({ WS_MAX_FRAME_BYTES: '10' }), /WS_MAX_FRAME_BYTES: .*must be >= 125/],
    [() => readWebSocketApiConfig({ MAX_CONNECTIONS: '0' }), /MAX_CONNECTIONS: invalid value "0"/],
    [() => readWebSocketApiConfig({ WS_ORIGINS: 'dashboard' }), /WS_ORIGINS: invalid value "dashboard"/],
    [() => readDashboardPushUrl({ WS_URL: 'http://x' }), /WS_URL: invalid value "http:\/\/x" \(expected ws:/],
    [() => readJwtConfig({ JWT_AUDIENCE: 'a' }), /JWT_ISSUER/],
    [() => readDeploymentContext({ maxConnectionsPerIp: '0' }), /-c maxConnectionsPerIp: invalid value "0"/],
  ])('a bad value is named (%#)', (read, message) => {
    expect(read).toThrow(message);
  });
});
