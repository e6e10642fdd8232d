// TLS for a registry served over https:// (and wss://): a CA to trust instead of the system's, and a client
// certificate for mutual TLS. fetch takes them through an undici dispatcher; ws takes them as they are.
import type { Agent } from 'undici';

export interface ClientTls {
  /** PEM CA certificate(s) that signed the registry's certificate (replaces the system CAs). */
  ca?: string | Buffer;
  /** PEM client certificate, for a registry that requires one (mutual TLS). */
  cert?: string | Buffer;
  /** PEM private key of `cert`. */
  key?: string | Buffer;
}

/** The fetch dispatcher for these settings; the caller closes it. undici loads only for clients with TLS settings. */
export async function tlsDispatcher(tls: ClientTls): Promise<Agent> {
  const { Agent } = await import('undici');
  return new Agent({ connect: { ...tls } });
}
