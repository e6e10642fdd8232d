// The published client library: `import { createClient } from 'rollcall/client'`.
// Depends on Node's fetch, `ws` and `undici` (TLS settings for fetch) only; the types come from the registry's schemas as types, never as code.
export { createClient, type ClientOptions, type RollcallClient } from './client.js';
export type { ClientTls } from './tls.js';
export { Registration, defaultInstanceId, type RegisterOptions } from './registration.js';
export { WatchView, SLOW_CONSUMER_CLOSE, type WatchOptions, type ViewFilter, type ViewChange } from './watch-view.js';
export { RollcallClientError, isRetryable, isNotFound, type ClientOnlyErrorCode } from './errors.js';
export {
  createFlipCounter,
  HEALTH_DEFAULTS,
  HEALTH_METADATA,
  type HealthCheckOptions,
  type HealthFlip,
  type HealthProbe,
  type ProbeResult,
} from './health.js';
export { isRoutable, createPicker, type Picker } from './routing.js';
export { backoffDelay, jitter, type RetryOptions } from './backoff.js';
export type {
  InstanceFilter,
  InstanceList,
  ServiceList,
  ServiceSummary,
  NamespaceList,
  NamespaceSummary,
  PutResult,
  ServicePutResult,
  ServicesApi,
} from './api.js';
export type { Service, ServicePort, PutServiceInput, ServiceEvent, WatchResource } from '../schemas/service.js';
export type { Instance, InstanceStatus, RegisterInput, PatchInput, RegistryEvent } from '../schemas/instance.js';
