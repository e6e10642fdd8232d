// Request bodies: UTF-8 JSON, unencoded, and nothing else. Fastify on its own parses text/plain too and would
// read a gzip or UTF-16 body as if it were UTF-8 JSON; here each of those is a clear 415.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RollcallError } from '../errors.js';

/** Why a body without a JSON content type is refused (the error handler's 415 message). */
export const JSON_ONLY = 'Send request bodies as "Content-Type: application/json" (UTF-8).';

function mediaTypeProblem(req: FastifyRequest): string | null {
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    return `Content-Encoding "${encoding.slice(0, 40)}" is not supported; send the body unencoded.`;
  }
  const type = req.headers['content-type'] ?? '';
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(type)?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    return `charset=${charset.slice(0, 40)} is not supported; JSON bodies are UTF-8.`;
  }
  return null;
}

/** Replaces Fastify's body parsers with one for application/json that checks charset and encoding first. */
export function installJsonBodyParser(app: FastifyInstance): void {
  // Keeps Fastify's protections: __proto__ and constructor.prototype keys are refused, not merged.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const problem = mediaTypeProblem(req);
    if (problem) {
      done(new RollcallError('unsupported_media_type', problem), undefined);
      return;
    }
    // A content type on an empty body (some clients send one on every request) means "no body".
    if (body === '') {
      done(null, undefined);
      return;
    }
    parseJson(req, body as string, done); // parseAs: string
  });
}
