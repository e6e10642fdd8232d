// Log lines never carry credentials: wherever a request's headers get logged, these paths are censored.
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'request.headers.authorization',
  '*.headers.authorization',
];

export const logRedaction = { paths: REDACTED_LOG_PATHS, censor: '[redacted]' };
