/**
 * The registry's active pointer: registry table item REGISTRY_KEYS.active(target) (pk "active#<target>"), attribute
 * `version`.
 * Kept apart from registry.ts (which loads models into onnxruntime-node) so that code needing only the pointer,
 * like the /version Lambda, does not bundle the native runtime.
 */
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { REGISTRY_KEYS } from '../resources.js';

export async function readActiveVersion(
  client: DynamoDBDocumentClient,
  table: string,
  target: string,
  set: 'l2' | 'ticker' = 'l2',
): Promise<string | undefined> {
  const out = await client.send(
    new GetCommand({ TableName: table, Key: REGISTRY_KEYS.active(target, set), ConsistentRead: true }),
  );
  const version = out.Item?.version;
  return typeof version === 'string' ? version : undefined;
}
