/**
 * Checks real HTTP answers against the API's OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1 uses):
 * the route, method and status must be documented, the content type must be the documented one, and a JSON
 * body must validate against its schema.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';

interface Operation {
  responses: Record<string, { content?: Record<string, { schema: object }> }>;
}
type Doc = { paths: Record<string, Record<string, Operation>> };

export interface Answer {
  status: number;
  contentType: string;
  text: string;
}

/** Problems with `answer` to `method path` (empty when it matches the document). */
export type Check = (method: string, path: string, answer: Answer) => string[];

const pointer = (...parts: string[]) =>
  `#/${parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;

export function openApiCheck(document: object): Check {
  const doc = document as Doc;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema(document, 'openapi');
  return (method, path, answer) => {
    const op = doc.paths[path]?.[method.toLowerCase()];
    if (!op) return [`${method} ${path} is not in the document`];
    const response = op.responses[String(answer.status)];
    if (!response) return [`${method} ${path} answered ${answer.status}, which the document does not list`];
    const type = answer.contentType.split(';')[0]!.trim();
    const content = response.content ?? {};
    const media = content[type];
    if (!media)
      return [
        `${method} ${path} ${answer.status} is ${type}; documented: ${Object.keys(content).join(', ')}`,
      ];
    if (type !== 'application/json') return [];
    const ref = `openapi${pointer('paths', path, method.toLowerCase(), 'responses', String(answer.status), 'content', type, 'schema')}`;
    const validate = ajv.getSchema(ref);
    if (!validate) return [`no schema at ${ref}`];
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      return [`${method} ${path} ${answer.status} body is not JSON: ${answer.text.slice(0, 80)}`];
    }
    return validate(body)
      ? []
      : (validate.errors ?? []).map(
          (e) => `${method} ${path} ${answer.status}: ${e.instancePath || '/'} ${e.message}`,
        );
  };
}
