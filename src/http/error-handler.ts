// One place maps every error to {error, message, details?} and a status. 5xx bodies never leak internals.
import type { FastifyError, FastifyInstance } from 'fastify';
import { RollcallError, type ErrorDetail } from '../errors.js';
import { JSON_ONLY } from './json-body.js';

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: { issues?: { message?: string }[] };
}

// A path segment can be a metadata key the client sent: show it, but never verbatim when it holds characters
// that would make the error (and the log line it lands in) display something else, nor at any length.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
function printable(segment: string): string {
  const escaped = segment.replace(UNPRINTABLE, (c) => `\\u{${c.codePointAt(0)!.toString(16).toUpperCase()}}`);
  return escaped.length > 160 ? `${escaped.slice(0, 157)}...` : escaped;
}

function validationDetails(err: FastifyError): ErrorDetail[] {
  const where = err.validationContext ?? 'request';
  return ((err.validation ?? []) as ValidationIssue[]).map((issue) => {
    const field = (issue.instancePath ?? '').split('/').filter(Boolean).map(printable).join('.');
    // zod reports a bad record key as "Invalid key in record"; the key's own rule says what is wrong with it.
    const keyRule = issue.keyword === 'invalid_key' ? issue.params?.issues?.[0]?.message : undefined;
    const message = keyRule === undefined ? (issue.message ?? 'is invalid') : `key ${keyRule}`;
    return { path: field ? `${where}.${field}` : where, message };
  });
}

/** Maps any thrown value to the RollcallError that the client sees. */
export function toRollcallError(err: FastifyError | Error, contentType?: string): RollcallError {
  if (err instanceof RollcallError) return err;
  const fe = err as FastifyError;
  if (fe.validation) {
    const details = validationDetails(fe);
    return new RollcallError(
      'validation_failed',
      `Invalid request: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`,
      details,
    );
  }
  const status = fe.statusCode ?? 500;
  if (status === 413) return new RollcallError('body_too_large', 'The request body is larger than the 1 MiB limit.');
  if (status === 415) return new RollcallError('unsupported_media_type', contentType === undefined ? `${JSON_ONLY} The request had none.` : `${JSON_ONLY} Got "${contentType.slice(0, 80)}".`);
  if (status === 400 && (err instanceof SyntaxError || /JSON/i.test(fe.code ?? '') || /JSON/.test(fe.message))) {
    return new RollcallError('invalid_json', `The request body is not valid JSON: ${fe.message}`);
  }
  if (status >= 400 && status < 500) return new RollcallError('bad_request', fe.message);
  return new RollcallError('internal_error', 'An internal error occurred; the server log has the details.');
}

export function installErrorHandlers(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const mapped = toRollcallError(err, request.headers['content-type']);
    if (mapped.status >= 500) request.log.error({ err }, 'request failed');
    else request.log.info({ code: mapped.code }, mapped.message);
    const body: { error: string; message: string; details?: ErrorDetail[] } = { error: mapped.code, message: mapped.message };
    if (mapped.details) body.details = mapped.details;
    return reply.code(mapped.status).type('application/json').send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    return reply.code(404).send({ error: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}.` });
  });
}
