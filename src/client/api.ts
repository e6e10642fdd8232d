// The REST API of issue 2, one function per route. Paths are built here and nowhere else.
import type { Instance, InstanceStatus, PatchInput, RegisterInput } from '../schemas/instance.js';
import type { PutServiceInput, Service, ServicePort } from '../schemas/service.js';
import { requestJson, type HttpConfig } from './http.js';

export interface InstanceFilter {
  status?: InstanceStatus;
  zone?: string;
  tag?: string;
}

export interface InstanceList {
  revision: number;
  items: Instance[];
}

export interface ServiceSummary {
  name: string;
  instances: number;
  up: number;
  /** Only when the service has an explicit Service (a stable address). */
  virtualIP?: string;
  ports?: ServicePort[];
}

export interface ServiceList {
  revision: number;
  items: ServiceSummary[];
}

export interface NamespaceSummary {
  name: string;
  services: number;
  instances: number;
}

export interface NamespaceList {
  items: NamespaceSummary[];
}

export interface PutResult {
  instance: Instance;
  /** true on 201 (new registration), false on 200 (replaced an existing one). */
  created: boolean;
}

export interface ServicePutResult {
  service: Service;
  /** true on 201 (new Service), false on 200 (replaced, or identical and unchanged). */
  created: boolean;
}

function servicePath(namespace: string, name: string): string {
  return `/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(name)}`;
}

/** Explicit Services (stable virtual IPs): `client.services.put/get/delete/list`. */
export function createServicesApi(http: HttpConfig) {
  return {
    /** Creates the Service (virtualIP allocated unless asked for) or replaces its ports. */
    async put(namespace: string, name: string, body: PutServiceInput): Promise<ServicePutResult> {
      const res = await requestJson<Service>(http, 'PUT', servicePath(namespace, name), body);
      return { service: res.body, created: res.status === 201 };
    },

    /** Rejects with code service_not_found (404) when there is no such Service. */
    async get(namespace: string, name: string): Promise<Service> {
      return (await requestJson<Service>(http, 'GET', servicePath(namespace, name))).body;
    },

    /** Releases the virtual IP; the service's instances stay registered. */
    async delete(namespace: string, name: string): Promise<void> {
      await requestJson<unknown>(http, 'DELETE', servicePath(namespace, name));
    },

    /** The namespace's catalog: every service with instances or a Service, with virtualIP and ports when it has one. */
    async list(namespace: string): Promise<ServiceList> {
      return (await requestJson<ServiceList>(http, 'GET', `/v1/namespaces/${encodeURIComponent(namespace)}/services`)).body;
    },
  };
}

export type ServicesApi = ReturnType<typeof createServicesApi>;

function instancePath(namespace: string, service: string, id: string): string {
  return `/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(service)}/instances/${encodeURIComponent(id)}`;
}

export function createApi(http: HttpConfig) {
  return {
    async putInstance(namespace: string, service: string, id: string, body: RegisterInput, timeoutMs?: number): Promise<PutResult> {
      const res = await requestJson<Instance>(http, 'PUT', instancePath(namespace, service, id), body, timeoutMs);
      return { instance: res.body, created: res.status === 201 };
    },

    async heartbeat(namespace: string, service: string, id: string): Promise<Instance> {
      return (await requestJson<Instance>(http, 'PUT', `${instancePath(namespace, service, id)}/heartbeat`)).body;
    },

    async patchInstance(namespace: string, service: string, id: string, patch: PatchInput): Promise<Instance> {
      return (await requestJson<Instance>(http, 'PATCH', instancePath(namespace, service, id), patch)).body;
    },

    async deleteInstance(namespace: string, service: string, id: string): Promise<void> {
      await requestJson<unknown>(http, 'DELETE', instancePath(namespace, service, id));
    },

    async getInstance(namespace: string, service: string, id: string): Promise<Instance> {
      return (await requestJson<Instance>(http, 'GET', instancePath(namespace, service, id))).body;
    },

    async listInstances(namespace: string, service: string, filter: InstanceFilter = {}): Promise<InstanceList> {
      const q = new URLSearchParams();
      if (filter.status) q.set('status', filter.status);
      if (filter.zone !== undefined) q.set('zone', filter.zone);
      if (filter.tag !== undefined) q.set('tag', filter.tag);
      const qs = q.size > 0 ? `?${q.toString()}` : '';
      const path = `/v1/namespaces/${encodeURIComponent(namespace)}/services/${encodeURIComponent(service)}/instances${qs}`;
      return (await requestJson<InstanceList>(http, 'GET', path)).body;
    },

    async listServices(namespace: string): Promise<ServiceList> {
      return (await requestJson<ServiceList>(http, 'GET', `/v1/namespaces/${encodeURIComponent(namespace)}/services`)).body;
    },

    async listNamespaces(): Promise<NamespaceList> {
      return (await requestJson<NamespaceList>(http, 'GET', '/v1/namespaces')).body;
    },
  };
}

export type Api = ReturnType<typeof createApi>;
