// Lease renewal shapes, declared once for the batch route (POST /v1/leases/renew), the lease stream
// (GET /v1/leases, WebSocket) and OpenAPI. An instance is named by one key, `namespace/service/id`
// (Kubernetes' namespace/name key, one level deeper): namespaces and services are DNS labels and ids never
// hold "/", so the key is unambiguous, and a renewal of many instances stays a short list of strings.
import { z } from 'zod';
import { DNS_LABEL, INSTANCE_ID } from './instance.js';

const LABEL = DNS_LABEL.source.slice(1, -1);
const ID = INSTANCE_ID.source.slice(1, -1);
export const INSTANCE_KEY = new RegExp(`^(${LABEL})/(${LABEL})/(${ID})$`);

/** Instances one renewal (a request or a stream message) may name; more is split by the client. */
export const MAX_RENEWALS = 1000;

export const instanceKey = z
  .string()
  .regex(INSTANCE_KEY, 'must be "namespace/service/id": two DNS-1123 labels and an instance id')
  .meta({ description: 'namespace/service/id', example: 'default/payments/payments-7f9c-1' });

const instances = z
  .array(instanceKey)
  .min(1)
  .max(MAX_RENEWALS)
  .meta({ description: `The instances to renew, 1-${MAX_RENEWALS}; results come back in the same order` });

export const renewBody = z.object({ instances }).strict().meta({ id: 'RenewLeases' });

const seq = z
  .int()
  .min(0)
  .max(Number.MAX_SAFE_INTEGER)
  .meta({ description: 'Chosen by the client; the answer to this message carries it back' });

export const renewMessage = z
  .object({ type: z.literal('RENEW'), seq: seq.optional(), instances })
  .strict()
  .meta({ id: 'LeaseRenewMessage', description: 'Client → server: renew these instances' });

export const renewed = z
  .object({
    instance: instanceKey,
    ttlSeconds: z.int().meta({ description: 'The lease length in force' }),
    expiresAt: z.string().meta({ description: 'The new deadline (ISO 8601 UTC)', example: '2026-11-28T06:00:30.000Z' }),
  })
  .meta({ id: 'LeaseRenewed' });

export const renewalFailed = z
  .object({
    instance: instanceKey,
    error: z.string().meta({
      description:
        'Stable code: instance_not_found (unknown or its lease ended: register it again), forbidden (the credential lacks write on its namespace), storage_full (a lapsed instance could not be brought back)',
      example: 'instance_not_found',
    }),
    status: z.int().meta({ description: 'The HTTP status PUT …/heartbeat would have answered', example: 404 }),
    message: z.string(),
  })
  .meta({ id: 'LeaseRenewalFailed' });

export const renewalResult = z.union([renewed, renewalFailed]);
export type RenewalResult = z.infer<typeof renewalResult>;

export const renewResponse = z
  .object({ results: z.array(renewalResult).meta({ description: 'One per instance asked, in the same order' }) })
  .meta({ id: 'LeaseRenewals' });

export const renewedMessage = z
  .object({ type: z.literal('RENEWED'), seq: seq.optional(), results: renewResponse.shape.results })
  .meta({ id: 'LeaseRenewedMessage', description: 'Server → client: the answer to one RENEW, with its seq' });

export const leaseErrorMessage = z
  .object({
    type: z.literal('ERROR'),
    seq: seq.optional().meta({ description: 'The seq of the message refused, when it could be read' }),
    code: z.string().meta({ description: 'invalid_json, validation_failed (details name the fields) or bad_request (a binary frame)' }),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'LeaseErrorMessage', description: 'Server → client: a message that could not be read; the stream stays open' });

/** Every message of the lease stream, both ways, told apart by `type` (documents the upgrade route). */
export const leaseStreamMessage = z
  .discriminatedUnion('type', [renewMessage, renewedMessage, leaseErrorMessage])
  .meta({ id: 'LeaseStreamMessage' });
