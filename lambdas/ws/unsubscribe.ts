/** unsubscribe: {"action":"unsubscribe"[,"products":[...]]}; the page sends it while its tab is hidden. */
import { webSocketHandler } from '../../src/api/middleware.js';
import { onUnsubscribe, type WebSocketEvent } from '../../src/api/push.js';
import { dynamoClient } from '../../src/aws/clients.js';
import { readResourceNames, readWebSocketApiConfig } from '../../src/config.js';
import { ConnectionsStore } from '../../src/storage/connections.js';

const store = new ConnectionsStore({ client: dynamoClient(), table: readResourceNames().connectionsTable });
const { maxProducts } = readWebSocketApiConfig();

export const handler = webSocketHandler((event: WebSocketEvent) =>
  onUnsubscribe(event, { store, maxProducts }),
);
