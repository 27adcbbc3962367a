/** $default: a message no route takes gets a clear error (src/api/push.ts onDefault). */
import { webSocketHandler } from '../../src/api/middleware.js';
import { onDefault, type WebSocketEvent } from '../../src/api/push.js';

export const handler = webSocketHandler(async (event: WebSocketEvent) => onDefault(event));
