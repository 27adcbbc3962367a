/** $connect: Origin, MAX_CONNECTIONS and the per-address cap, then the connection is recorded (src/api/push.ts). */
import { webSocketHandler } from '../../src/api/middleware.js';
import { onConnect, type WebSocketEvent } from '../../src/api/push.js';
import { dynamoClient } from '../../src/aws/clients.js';
import { readResourceNames, readWebSocketApiConfig } from '../../src/config.js';
import { ConnectionsStore } from '../../src/storage/connections.js';

const store = new ConnectionsStore({ client: dynamoClient(), table: readResourceNames().connectionsTable });
const config = readWebSocketApiConfig();

export const handler = webSocketHandler((event: WebSocketEvent) => onConnect(event, { store, config }));
