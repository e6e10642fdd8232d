// Everything from the registry that reaches a config passes through here: addresses are checked, free text is
// reduced to a comment-safe alphabet. Ids, tags and metadata are never written as directives or arguments.
import { isIP } from 'node:net';
import { isValidAddress } from '../schemas/instance.js';

/**
 * The registry already validates addresses; check again because a config is executable input for the proxy.
 * The alphabet test is belt and braces against a future loosening of isValidAddress.
 */
export function isSafeAddress(address: string): boolean {
  return typeof address === 'string' && address.length <= 253 && /^[A-Za-z0-9.:-]+$/.test(address) && isValidAddress(address);
}

/** host:port as both nginx and HAProxy parse it: IPv6 literals in brackets. */
export function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Text for a `#` comment: one line, a small alphabet, bounded length. Both proxies end a comment at the newline, and
 * HAProxy also treats quotes and backslashes specially, so anything outside the alphabet becomes "?".
 */
export function commentText(value: string, max = 128): string {
  const cleaned = value.replace(/[^A-Za-z0-9._:@/=,+ -]/g, '?');
  return cleaned.length > max ? `${cleaned.slice(0, max)}...` : cleaned;
}
