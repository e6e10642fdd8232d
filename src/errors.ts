// Errors are values with stable codes. The HTTP error handler maps them to {error, message, details?} and a status.
export const ERROR_CODES = {
  validation_failed: 400,
  invalid_json: 400,
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  instance_not_found: 404,
  service_not_found: 404,
  method_not_allowed: 405,
  virtual_ip_taken: 409,
  virtual_ip_immutable: 409,
  service_cidr_full: 409,
  virtual_ip_out_of_range: 422,
  request_timeout: 408,
  body_too_large: 413,
  uri_too_long: 414,
  unsupported_media_type: 415,
  expectation_failed: 417,
  upgrade_required: 426,
  too_many_requests: 429,
  headers_too_large: 431,
  internal_error: 500,
  not_ready: 503,
  too_many_connections: 503,
  too_many_watchers: 503,
  storage_full: 503,
  // The etcd backend (README "High availability on etcd").
  store_unavailable: 503,
  revision_compacted: 410,
  revision_not_reached: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetail {
  path: string;
  message: string;
}

export class RollcallError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: ErrorDetail[];

  constructor(code: ErrorCode, message: string, details?: ErrorDetail[]) {
    super(message);
    this.name = 'RollcallError';
    this.code = code;
    this.status = ERROR_CODES[code];
    if (details) this.details = details;
  }
}

export function instanceNotFound(namespace: string, service: string, id: string): RollcallError {
  return new RollcallError(
    'instance_not_found',
    `Instance "${id}" of service "${service}" in namespace "${namespace}" is not registered (unknown or its lease expired); register it again.`,
  );
}

export function serviceNotFound(namespace: string, name: string): RollcallError {
  return new RollcallError(
    'service_not_found',
    `Service "${name}" in namespace "${namespace}" does not exist (its instances, if any, are registered without a virtual address); create it with PUT.`,
  );
}
