/** subscribe: {"action":"subscribe","products":[...]} answered at once with their current snapshots. */
import { webSocketHandler } from '../../src/api/middleware.js';
import { onSubscribe, type WebSocketEvent } from '../../src/api/push.js';
import { dynamoClient } from '../../src/aws/clients.js';
import { readCoreConfig, readResourceNames, readWebSocketApiConfig } from '../../src/config.js';
import { ConnectionsStore } from '../../src/storage/connections.js';
import { listLatest } from '../../src/storage/latest.js';

const core = readCoreConfig();
const store = new ConnectionsStore({ client: dynamoClient(), table: readResourceNames().connectionsTable });
const { maxProducts } = readWebSocketApiConfig();

export const handler = webSocketHandler((event: WebSocketEvent) =>
  onSubscribe(event, {
    store,
    products: core.symbols,
    maxProducts,
    tickMs: core.tickMs,
    snapshots: (products) => listLatest([...products]),
  }),
);
