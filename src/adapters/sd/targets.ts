// Instances → Prometheus target groups (the http_sd_configs format). Pure.
import type { Instance } from '../../schemas/instance.js';

export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

const PREFIX = '__meta_rollcall_';

/** Prometheus' strutil.SanitizeLabelName: every character outside [a-zA-Z0-9_] becomes "_". */
export function sanitizeLabelName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

/** host:port as Prometheus' net.JoinHostPort writes it: IPv6 literals in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * One group per instance: every instance carries its own labels, so groups cannot be shared. Tags are
 * comma-joined with a leading and a trailing comma, as consul_sd does, so `.*,v2,.*` matches any position.
 */
export function toTargetGroups(instances: Instance[]): TargetGroup[] {
  return instances.map((i) => {
    const labels: Record<string, string> = {
      [`${PREFIX}namespace`]: i.namespace,
      [`${PREFIX}service`]: i.service,
      [`${PREFIX}instance_id`]: i.id,
      [`${PREFIX}address`]: i.address,
      [`${PREFIX}port`]: String(i.port),
      [`${PREFIX}zone`]: i.zone ?? '',
      [`${PREFIX}status`]: i.status,
      [`${PREFIX}weight`]: String(i.weight),
      [`${PREFIX}tags`]: i.tags.length === 0 ? '' : `,${i.tags.join(',')},`,
    };
    // Sorted so two keys that sanitize to the same label name always resolve the same way (the last wins).
    for (const key of Object.keys(i.metadata).sort()) {
      labels[`${PREFIX}metadata_${sanitizeLabelName(key)}`] = i.metadata[key]!;
    }
    return { targets: [joinHostPort(i.address, i.port)], labels };
  });
}
