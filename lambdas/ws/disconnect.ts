/** $disconnect: the connection is forgotten and its counts given back (src/api/push.ts). */
import { webSocketHandler } from '../../src/api/middleware.js';
import { onDisconnect, type WebSocketEvent } from '../../src/api/push.js';
import { dynamoClient } from '../../src/aws/clients.js';
import { readResourceNames } from '../../src/config.js';
import { ConnectionsStore } from '../../src/storage/connections.js';

const store = new ConnectionsStore({ client: dynamoClient(), table: readResourceNames().connectionsTable });

export const handler = webSocketHandler((event: WebSocketEvent) => onDisconnect(event, { store }));
